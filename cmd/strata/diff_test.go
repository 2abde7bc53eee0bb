package main_test

// End-to-end tests of `strata diff`: images built by strata, and images
// written by tools we did not write (skopeo, umoci), in OCI layouts, a
// docker-archive and a real registry.

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stratabuild/strata/internal/imagediff"
	"github.com/stratabuild/strata/internal/testutil"
)

// diffJSON runs `strata diff --format json` and decodes what it printed.
func diffJSON(t *testing.T, wantCode int, args ...string) imagediff.Result {
	t.Helper()
	r := strata(t, nil, append([]string{"diff", "--format", "json"}, args...)...)
	if r.code != wantCode {
		t.Fatalf("strata diff %s: exit %d, want %d\n%s%s", strings.Join(args, " "), r.code, wantCode, r.stdout, r.stderr)
	}
	var res imagediff.Result
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("strata diff --format json printed no Result: %v\n%s", err, r.stdout)
	}
	return res
}

// changes summarises the entries of a result that differ, per layer, as
// "INDEX KIND PATH ATTR,ATTR".
func changes(r imagediff.Result) []string {
	var out []string
	for _, l := range r.Layers {
		for _, c := range l.Changes {
			var attrs []string
			for _, a := range c.Attrs {
				attrs = append(attrs, a.Attr)
			}
			out = append(out, strings.TrimSpace(strings.Join([]string{
				strconv.Itoa(l.Index), c.Kind, c.Path, strings.Join(attrs, ",")}, " ")))
		}
	}
	return out
}

func statuses(r imagediff.Result) []string {
	var out []string
	for _, l := range r.Layers {
		out = append(out, l.Status)
	}
	return out
}

// changeLines are the lines of `strata diff` text output naming an entry.
func changeLines(stdout string) []string {
	var out []string
	for _, line := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(line, "  + ") || strings.HasPrefix(line, "  - ") || strings.HasPrefix(line, "  ~ ") {
			out = append(out, line)
		}
	}
	return out
}

func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		testutil.Require(t, tool, func() error { _, err := exec.LookPath(tool); return err },
			"apt-get install -y "+tool)
	}
}

// TestDiffNamesTheChangedFiles: two strata builds whose inputs differ in
// one file's content and one file's mode; strata diff names exactly those
// two paths and exits 1. Rebuilt with the first inputs, the image is
// identical: exit 0. (A copy from the context keeps only the executable
// bit of a mode, as git does: 0644 or 0755.)
func TestDiffNamesTheChangedFiles(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, `from: ${BASE}
args: {BASE: scratch}
steps:
  - run: mkdir -p /opt/app && echo built > /opt/app/stamp
  - copy: [app.conf, tool]
    to: /opt/app/
`, map[string]string{"app.conf": "port=1\n", "tool": "#!/bin/sh\necho tool\n"})
	setFile := func(name, content string, mode os.FileMode) {
		p := filepath.Join(ctx, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"SOURCE_DATE_EPOCH=1700000000"}
	build := func() string {
		out := filepath.Join(t.TempDir(), "img.oci")
		mustBuild(t, env, "--root", t.TempDir(), "--build-arg", busyboxBase(t), "-t", "img:latest", "-o", "type=oci,dest="+out, ctx)
		return "oci-layout://" + out + ":latest"
	}
	setFile("app.conf", "port=1\n", 0o644)
	setFile("tool", "#!/bin/sh\necho tool\n", 0o644)
	a := build()
	setFile("app.conf", "port=10\n", 0o644)
	setFile("tool", "#!/bin/sh\necho tool\n", 0o755)
	b := build()

	r := strata(t, nil, "diff", a, b)
	if r.code != 1 {
		t.Fatalf("strata diff: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	lines := changeLines(r.stdout)
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "  ~ /opt/app/app.conf  content sha256:") ||
		!strings.HasSuffix(lines[0], ", size 7 → 8") || lines[1] != "  ~ /opt/app/tool  mode 0644 → 0755" {
		t.Errorf("strata diff names %q, want app.conf's content and size and tool's mode\n%s", lines, r.stdout)
	}
	res := diffJSON(t, 1, a, b)
	want := []string{"2 changed /opt/app/app.conf content,size", "2 changed /opt/app/tool mode"}
	if diff := cmp.Diff(want, changes(res)); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	if len(res.Fields) != 0 || !cmp.Equal(statuses(res), []string{"same", "same", "changed"}) {
		t.Errorf("fields %s, layers %q; want no field and only the copy layer to differ", res.Fields, statuses(res))
	}

	setFile("app.conf", "port=1\n", 0o644)
	setFile("tool", "#!/bin/sh\necho tool\n", 0o644)
	c := build()
	r = strata(t, nil, "diff", a, c)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "identical: sha256:") {
		t.Errorf("strata diff of a rebuild with the same inputs: exit %d, want 0 and identical\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// umociImages makes, from the busybox image copied by skopeo into a new
// layout, two images with one layer each written by umoci repack that
// differ only in the content of /etc/motd. It returns the layout.
func umociImages(t *testing.T) string {
	t.Helper()
	busybox := testutil.BusyboxLayout(t)
	dir := filepath.Join(t.TempDir(), "layout")
	run(t, nil, "skopeo", "copy", "-q", "oci:"+busybox+":"+testutil.BusyboxTag, "oci:"+dir+":latest")
	pinned := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	for tag, motd := range map[string]string{"one": "hello\n", "two": "hullo, world\n"} {
		bundle := filepath.Join(t.TempDir(), "bundle")
		run(t, nil, "umoci", "unpack", "--image", dir+":latest", bundle)
		etc := filepath.Join(bundle, "rootfs", "etc")
		if err := os.WriteFile(filepath.Join(etc, "motd"), []byte(motd), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{filepath.Join(etc, "motd"), etc} {
			if err := os.Chtimes(p, pinned, pinned); err != nil {
				t.Fatal(err)
			}
		}
		run(t, nil, "umoci", "repack", "--history.created", pinned.Format(time.RFC3339), "--image", dir+":"+tag, bundle)
	}
	return dir
}

// TestDiffImagesStrataDidNotBuild: layouts written by skopeo and umoci, a
// docker-archive written by skopeo.
func TestDiffImagesStrataDidNotBuild(t *testing.T) {
	testutil.RequireRoot(t)
	requireTools(t, "skopeo", "umoci")
	busybox := "oci-layout://" + testutil.BusyboxLayout(t) + ":" + testutil.BusyboxTag
	dir := umociImages(t)

	// skopeo's copy of the busybox image is the same image.
	if r := strata(t, nil, "diff", busybox, "oci-layout://"+dir+":latest"); r.code != 0 || !strings.HasPrefix(r.stdout, "identical: ") {
		t.Errorf("busybox vs skopeo's copy: exit %d, want 0 and identical\n%s%s", r.code, r.stdout, r.stderr)
	}

	// umoci's two images differ in /etc/motd only.
	one, two := "oci-layout://"+dir+":one", "oci-layout://"+dir+":two"
	res := diffJSON(t, 1, one, two)
	if diff := cmp.Diff([]string{"1 changed /etc/motd content,size"}, changes(res)); diff != "" {
		t.Errorf("umoci images: changes (-want +got):\n%s", diff)
	}
	if len(res.Fields) != 0 || !cmp.Equal(statuses(res), []string{"same", "changed"}) {
		t.Errorf("umoci images: fields %s, layers %q; want only layer 1 to differ", res.Fields, statuses(res))
	}

	// A docker-archive has no manifest: the same config and layers are
	// the same image.
	archive := filepath.Join(t.TempDir(), "two.tar")
	run(t, nil, "skopeo", "copy", "-q", "oci:"+dir+":two", "docker-archive:"+archive+":umoci:two")
	res = diffJSON(t, 0, "docker-archive://"+archive, two)
	if !res.Identical || res.ManifestCompared || !cmp.Equal(statuses(res), []string{"same", "same"}) {
		t.Errorf("docker-archive vs its layout: %+v; want identical content layers, manifests not compared", res)
	}
	// Its layers are read when they differ.
	res = diffJSON(t, 1, "docker-archive://"+archive, one)
	if diff := cmp.Diff([]string{"1 changed /etc/motd content,size"}, changes(res)); diff != "" {
		t.Errorf("docker-archive vs the other layout: changes (-want +got):\n%s", diff)
	}
}

// TestDiffRegistryAgainstLayout: an image in a real registry against one
// in a layout; the layer they share is not downloaded, the one that
// differs is, once.
func TestDiffRegistryAgainstLayout(t *testing.T) {
	testutil.RequireRoot(t)
	requireTools(t, "skopeo", "umoci")
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	dir := umociImages(t)
	remote := reg.Addr + "/umoci:two"
	run(t, nil, "skopeo", "copy", "-q", "--dest-tls-verify=false", "oci:"+dir+":two", "docker://"+remote)

	res := diffJSON(t, 1, remote, "oci-layout://"+dir+":one")
	if diff := cmp.Diff([]string{"1 changed /etc/motd content,size"}, changes(res)); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	if !cmp.Equal(statuses(res), []string{"same", "changed"}) {
		t.Fatalf("layers %q, want same, changed", statuses(res))
	}
	blobGets := func(digest string) int { return reg.Requests(t, "GET", "/blobs/"+digest) }
	if n := blobGets(res.Layers[0].A.Digest); n != 0 {
		t.Errorf("the shared layer was downloaded %d times, want 0", n)
	}
	if n := blobGets(res.Layers[1].A.Digest); n != 1 {
		t.Errorf("the differing layer was downloaded %d times, want 1", n)
	}
	if r := strata(t, nil, "diff", remote, "oci-layout://"+dir+":two"); r.code != 0 {
		t.Errorf("the pushed image vs its layout: exit %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestDiffBadUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"diff"}, "diff takes two images"},
		{[]string{"diff", "oci-layout://" + missing}, "diff takes two images"},
		{[]string{"diff", "--format", "yaml", "a", "b"}, "--format"},
		{[]string{"diff", "--bogus", "a", "b"}, "unknown flag"},
		{[]string{"diff", "oci-layout://" + missing, "oci-layout://" + missing}, missing},
		{[]string{"diff", "UPPER/case:bad", "oci-layout://" + missing}, "UPPER/case:bad"},
	} {
		r := strata(t, nil, tt.args...)
		if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("strata %s: exit %d, stdout %q, stderr %q; want 2 and %q", strings.Join(tt.args, " "), r.code, r.stdout, r.stderr, tt.want)
		}
	}
}
