package commit_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/testutil"
)

// motdImage is busybox plus a layer writing /etc/motd and an empty step.
func motdImage(t testing.TB, motd string) v1.Image {
	t.Helper()
	img, err := commit.Image(pullBusybox(t), commit.ImageOptions{
		Steps: []commit.Step{
			{Layer: newLayer(t, map[string]string{"etc/motd": motd}), CreatedBy: "run: write motd"},
			{CreatedBy: "env: A=1"},
		},
		Config:  commit.Config{Env: []string{"PATH=/bin", "A=1"}, Cmd: []string{"cat", "/etc/motd"}, CmdSet: true},
		Created: epoch,
	})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func digestOf(t testing.TB, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func requireTool(t testing.TB, path, pkg string) {
	t.Helper()
	testutil.Require(t, filepath.Base(path), func() error { _, err := exec.LookPath(path); return err },
		"apt-get install -y "+pkg)
}

func run(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}

func TestWriteOCILayout(t *testing.T) {
	requireTool(t, "skopeo", "skopeo")
	requireTool(t, "umoci", "umoci")
	img := motdImage(t, "hello\n")
	want := digestOf(t, img)
	dir := filepath.Join(t.TempDir(), "out")
	if err := commit.WriteOCILayout(t.Context(), dir, img, []string{"v1", "latest"}); err != nil {
		t.Fatalf("WriteOCILayout: %v", err)
	}

	for _, tag := range []string{"v1", "latest"} {
		var inspect struct {
			Digest string
			Env    []string
			Layers []string
		}
		out := run(t, nil, "skopeo", "inspect", "oci:"+dir+":"+tag)
		if err := json.Unmarshal([]byte(out), &inspect); err != nil {
			t.Fatalf("skopeo inspect output: %v\n%s", err, out)
		}
		if inspect.Digest != want.String() {
			t.Errorf("skopeo inspect oci:DIR:%s digest = %s, want %s", tag, inspect.Digest, want)
		}
		if len(inspect.Layers) != 2 {
			t.Errorf("skopeo sees %d layers, want 2", len(inspect.Layers))
		}
	}
	// umoci unpacks it: the new layer is applied over busybox.
	bundle := filepath.Join(t.TempDir(), "bundle")
	run(t, nil, "umoci", "unpack", "--rootless", "--image", dir+":v1", bundle)
	motd, err := os.ReadFile(filepath.Join(bundle, "rootfs", "etc", "motd"))
	if err != nil || string(motd) != "hello\n" {
		t.Errorf("umoci-unpacked /etc/motd = %q, %v; want %q", motd, err, "hello\n")
	}
	if _, err := os.Lstat(filepath.Join(bundle, "rootfs", "bin", "busybox")); err != nil {
		t.Errorf("umoci-unpacked rootfs lacks the base layer: %v", err)
	}

	// ggcr reads it back and finds it valid.
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, d := range im.Manifests {
		if d.Digest != want || d.MediaType != types.OCIManifestSchema1 {
			t.Errorf("index entry %v %s, want %v %s", d.Digest, d.MediaType, want, types.OCIManifestSchema1)
		}
		refs = append(refs, d.Annotations["org.opencontainers.image.ref.name"])
	}
	if diff := cmp.Diff([]string{"v1", "latest"}, refs); diff != "" {
		t.Errorf("ref names (-want +got):\n%s", diff)
	}
	back, err := idx.Image(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(back); err != nil {
		t.Errorf("validate.Image of the written layout: %v", err)
	}
	// Pull reads its own output.
	pulled, err := pullRef(t, "oci-layout://"+dir+":latest", commit.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := digestOf(t, pulled); got != want {
		t.Errorf("Pull(oci-layout://DIR:latest) digest = %v, want %v", got, want)
	}
}

// A failed write leaves the layout as it was; a second image written
// under the same name takes the name, as skopeo does.
func TestWriteOCILayoutReplaceTag(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	first := motdImage(t, "first\n")
	if err := commit.WriteOCILayout(t.Context(), dir, first, []string{"x", "keep"}); err != nil {
		t.Fatal(err)
	}
	indexBefore, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}

	// An image whose new layer blob has vanished cannot be written.
	l := newLayer(t, map[string]string{"etc/motd": "broken\n"})
	broken, err := commit.Image(pullBusybox(t), commit.ImageOptions{Steps: []commit.Step{{Layer: l}}, Created: epoch})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(l.Path()); err != nil {
		t.Fatal(err)
	}
	if err := commit.WriteOCILayout(t.Context(), dir, broken, []string{"x"}); err == nil {
		t.Fatal("WriteOCILayout of an image with a missing blob succeeded")
	}
	indexAfter, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if string(indexAfter) != string(indexBefore) {
		t.Errorf("failed write changed index.json:\n%s\nwas:\n%s", indexAfter, indexBefore)
	}
	if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 1 {
		t.Errorf("%d entries beside the layout after a failed write, want only the layout", len(entries))
	}
	if temps, _ := filepath.Glob(filepath.Join(dir, "blobs", "sha256", ".*")); len(temps) != 0 {
		t.Errorf("temps left in the layout's blobs after a failed write: %v", temps)
	}

	second := motdImage(t, "second\n")
	if err := commit.WriteOCILayout(t.Context(), dir, second, []string{"x"}); err != nil {
		t.Fatal(err)
	}
	want := map[string]v1.Hash{"keep": digestOf(t, first), "x": digestOf(t, second)}
	if diff := cmp.Diff(want, layoutRefs(t, dir)); diff != "" {
		t.Errorf("layout refs after replacing x (-want +got):\n%s", diff)
	}
}

func TestPullLayoutRefs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "two")
	a, b := motdImage(t, "a\n"), motdImage(t, "b\n")
	if err := commit.WriteOCILayout(t.Context(), dir, a, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(t.TempDir(), "full")
	if err := commit.WriteOCILayout(t.Context(), full, a, []string{"127.0.0.1:5000/x/app:1.0"}); err != nil {
		t.Fatal(err)
	}
	both := filepath.Join(t.TempDir(), "both")
	if err := commit.WriteOCILayout(t.Context(), both, a, []string{"x/app:1.0"}); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(both)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(b, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "y/app:1.0"})); err != nil {
		t.Fatal(err)
	}
	twoTags := filepath.Join(t.TempDir(), "twotags") // -t x/app:1.0 -t x/app:latest
	if err := commit.WriteOCILayout(t.Context(), twoTags, a, []string{"x/app:1.0", "x/app:latest"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ref     string
		want    v1.Hash
		wantErr bool
	}{
		{ref: "oci-layout://" + dir, want: digestOf(t, a)},
		{ref: "oci-layout://" + twoTags, want: digestOf(t, a)}, // one image, tagged twice
		{ref: "oci-layout://" + both, wantErr: true},           // two images
		{ref: "oci-layout://" + dir + ":a", want: digestOf(t, a)},
		{ref: "oci-layout://" + dir + "@" + digestOf(t, a).String(), want: digestOf(t, a)},
		{ref: "oci-layout://" + dir + ":b", wantErr: true},
		{ref: "oci-layout://" + dir + "@" + digestOf(t, b).String(), wantErr: true},
		{ref: "oci-layout://" + filepath.Join(dir, "missing"), wantErr: true},
		// A full ref name is also found by its tag part, as buildx names them.
		{ref: "oci-layout://" + full + ":1.0", want: digestOf(t, a)},
		{ref: "oci-layout://" + full + ":app", wantErr: true},
		{ref: "oci-layout://" + both + ":1.0", wantErr: true}, // two images tagged 1.0
		{ref: "oci-layout://" + both + ":127.0.0.1:5000/x/app:1.0", wantErr: true},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			img, err := pullRef(t, tc.ref, commit.PullOptions{})
			if tc.wantErr {
				if err == nil {
					t.Fatal("Pull succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := digestOf(t, img); got != tc.want {
				t.Errorf("Pull(%q) digest = %v, want %v", tc.ref, got, tc.want)
			}
		})
	}
}

// A failed WriteDockerArchive leaves an existing file as it was and no
// temp file beside it.
func TestWriteDockerArchiveFailure(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "img.tar")
	good := motdImage(t, "good\n")
	if err := commit.WriteDockerArchive(t.Context(), file, good, []string{"strata.test/a:v1"}); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	l := newLayer(t, map[string]string{"etc/motd": "broken\n"})
	broken, err := commit.Image(pullBusybox(t), commit.ImageOptions{Steps: []commit.Step{{Layer: l}}, Created: epoch})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(l.Path()); err != nil {
		t.Fatal(err)
	}
	if err := commit.WriteDockerArchive(t.Context(), file, broken, []string{"strata.test/a:v1"}); err == nil {
		t.Fatal("WriteDockerArchive of an image with a missing blob succeeded")
	}
	after, err := os.ReadFile(file)
	if err != nil || string(after) != string(before) {
		t.Errorf("failed write changed %s (err %v)", file, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d entries in the dir after a failed write, want only the archive", len(entries))
	}
	back, err := pullRef(t, "docker-archive://"+file, commit.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A docker archive keeps the config, not the manifest.
	gotCfg, _ := back.ConfigName()
	wantCfg, _ := good.ConfigName()
	if gotCfg != wantCfg {
		t.Errorf("Pull(docker-archive://) config digest = %v, want %v", gotCfg, wantCfg)
	}
}

// TestWriteFileThroughLinks: an output file named by a symbolic link is
// written through it, as buildx writes: a regular file it leads to is
// replaced (the link stays a link), a device, a FIFO or a process's file
// descriptor is written in place, never replaced by a regular file.
func TestWriteFileThroughLinks(t *testing.T) {
	dir := t.TempDir()
	link := func(name, target string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	isLink := func(p string) {
		t.Helper()
		if fi, err := os.Lstat(p); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s is no longer a symbolic link: %v %v", p, fi, err)
		}
	}

	t.Run("regular", func(t *testing.T) {
		target := filepath.Join(dir, "real.iid")
		if err := os.WriteFile(target, []byte("sha256:old"), 0o644); err != nil {
			t.Fatal(err)
		}
		l := link("to-real", "real.iid")
		chain := link("to-link", l)
		if err := commit.WriteFile(chain, []byte("sha256:new")); err != nil {
			t.Fatal(err)
		}
		isLink(l)
		isLink(chain)
		if got, err := os.ReadFile(target); err != nil || string(got) != "sha256:new" {
			t.Errorf("the link's target holds %q (%v), want sha256:new", got, err)
		}
	})
	t.Run("dangling", func(t *testing.T) {
		l := link("to-missing", filepath.Join(dir, "sub", "missing.iid"))
		if err := commit.WriteFile(l, []byte("sha256:new")); err != nil {
			t.Fatal(err)
		}
		isLink(l)
		if got, err := os.ReadFile(filepath.Join(dir, "sub", "missing.iid")); err != nil || string(got) != "sha256:new" {
			t.Errorf("the link's target holds %q (%v), want sha256:new", got, err)
		}
	})
	t.Run("device", func(t *testing.T) {
		l := link("to-null", "/dev/null")
		if err := commit.WriteFile(l, []byte("sha256:new")); err != nil {
			t.Fatal(err)
		}
		isLink(l)
		if fi, err := os.Stat("/dev/null"); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
			t.Fatalf("/dev/null is no longer a device: %v %v", fi, err)
		}
	})
	t.Run("fifo", func(t *testing.T) {
		fifo := filepath.Join(dir, "fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		l := link("to-fifo", fifo)
		got := make(chan string, 1)
		go func() {
			b, _ := os.ReadFile(fifo)
			got <- string(b)
		}()
		if err := commit.WriteFile(l, []byte("sha256:new")); err != nil {
			t.Fatal(err)
		}
		if s := <-got; s != "sha256:new" {
			t.Errorf("read %q from the FIFO, want sha256:new", s)
		}
		if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
			t.Errorf("the FIFO was replaced: %v %v", fi, err)
		}
	})
	t.Run("process fd", func(t *testing.T) {
		// As /dev/stdout -> /proc/self/fd/1 with stdout redirected to
		// a file: the open file is written at its offset, not renamed
		// over, so that what the process writes next follows it.
		out := filepath.Join(dir, "stdout.txt")
		f, err := os.OpenFile(out, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString("before\n"); err != nil {
			t.Fatal(err)
		}
		before, _ := os.Stat(out)
		l := link("to-fd", fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
		if err := commit.WriteFile(l, []byte("sha256:new")); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString("\nafter\n"); err != nil {
			t.Fatal(err)
		}
		isLink(l)
		after, err := os.Stat(out)
		if err != nil || !os.SameFile(before, after) {
			t.Errorf("%s was replaced", out)
		}
		if got, _ := os.ReadFile(out); string(got) != "before\nsha256:new\nafter\n" {
			t.Errorf("%s holds %q, want the digest between what the process wrote", out, got)
		}
	})
}

// TestRemoveStale: the stale output a link leads to is removed, not the
// link; a device is left alone.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	target, l := filepath.Join(dir, "real.iid"), filepath.Join(dir, "link.iid")
	if err := os.WriteFile(target, []byte("sha256:old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, l); err != nil {
		t.Fatal(err)
	}
	if _, err := commit.RemoveStale(l); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the link's target is still there: %v", err)
	}
	if _, err := os.Lstat(l); err != nil {
		t.Errorf("the link was removed: %v", err)
	}
	null := filepath.Join(dir, "null")
	if err := os.Symlink("/dev/null", null); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{null, "/dev/null", filepath.Join(dir, "missing")} {
		if _, err := commit.RemoveStale(f); err != nil {
			t.Errorf("RemoveStale(%s) = %v", f, err)
		}
	}
	if fi, err := os.Stat("/dev/null"); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("/dev/null is no longer a device: %v %v", fi, err)
	}
}

// TestWriteFileMode: an output file gets 0666 less the umask, as buildx's
// do; one it replaces keeps its mode, and its owner when run as root.
func TestWriteFileMode(t *testing.T) {
	old := syscall.Umask(0o027)
	defer syscall.Umask(old)
	dir := t.TempDir()
	mode := func(p string) (os.FileMode, int, int) {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return fi.Mode().Perm(), int(st.Uid), int(st.Gid)
	}
	fresh := filepath.Join(dir, "new.iid")
	if err := commit.WriteFile(fresh, []byte("sha256:new")); err != nil {
		t.Fatal(err)
	}
	if m, _, _ := mode(fresh); m != 0o640 {
		t.Errorf("a new file's mode is %v, want 0640 (0666 less the umask 027)", m)
	}

	kept := filepath.Join(dir, "kept.iid")
	if err := os.WriteFile(kept, []byte("sha256:old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(kept, 0o604); err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = 1234, 5678
		if err := os.Chown(kept, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := commit.WriteFile(kept, []byte("sha256:new")); err != nil {
		t.Fatal(err)
	}
	if m, u, g := mode(kept); m != 0o604 || u != uid || g != gid {
		t.Errorf("the replaced file is %v %d:%d, want 0604 %d:%d as it was", m, u, g, uid, gid)
	}
	if b, _ := os.ReadFile(kept); string(b) != "sha256:new" {
		t.Errorf("the replaced file holds %q", b)
	}
}

// TestPullLayoutChecksManifestAndConfig: a layout whose config, or whose
// manifest, was rewritten in place (an Env with LD_PRELOAD added) is
// refused, even pinned by digest, as umoci and skopeo refuse it: its
// blobs no longer hold what their digests name.
func TestPullLayoutChecksManifestAndConfig(t *testing.T) {
	img := motdImage(t, "a\n")
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	md := digestOf(t, img)
	blob := func(dir string, h v1.Hash) string { return filepath.Join(dir, "blobs", h.Algorithm, h.Hex) }
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   string
	}{
		{"config rewritten", func(t *testing.T, dir string) {
			writeJSON(t, blob(dir, m.Config.Digest), func(cf map[string]any) {
				cf["config"].(map[string]any)["Env"] = []string{"LD_PRELOAD=/evil.so"}
			})
		}, "is corrupt or was altered: the blob of its config " + m.Config.Digest.String() + " holds content of digest"},
		{"manifest rewritten", func(t *testing.T, dir string) {
			writeJSON(t, blob(dir, md), func(man map[string]any) { man["annotations"] = map[string]string{"x": "y"} })
		}, "is corrupt or was altered: the blob of its manifest " + md.String() + " holds content of digest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "l")
			if err := commit.WriteOCILayout(t.Context(), dir, img, []string{"a"}); err != nil {
				t.Fatal(err)
			}
			if _, err := pullRef(t, "oci-layout://"+dir+":a", commit.PullOptions{}); err != nil {
				t.Fatalf("the layout as written: %v", err)
			}
			tc.tamper(t, dir)
			for _, ref := range []string{"oci-layout://" + dir + ":a", "oci-layout://" + dir + "@" + md.String()} {
				if _, err := pullRef(t, ref, commit.PullOptions{}); err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("Pull(%s) = %v, want an error containing %q", ref, err, tc.want)
				}
			}
		})
	}
}

// writeJSON rewrites the JSON file p in place as edit changes it.
func writeJSON(t *testing.T, p string, edit func(map[string]any)) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	edit(v)
	if data, err = json.Marshal(v); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
