package main_test

// The flags users bring from docker buildx, tried as they would: what the
// image and the files hold is read back with skopeo, not with our code.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// helloContext is examples/hello's recipe on the busybox base, in a
// context of its own, plus a step that fails when FAIL is set.
func helloContext(t *testing.T) string {
	t.Helper()
	return writeRecipe(t, `args: {BASE: scratch, FAIL: ""}
from: ${BASE}
steps:
  - run: echo "hello from strata" > /hello.txt
    name: write /hello.txt
  - run: if [ -n "${FAIL}" ]; then echo "the tail of a failing step"; exit 3; fi; date > /built-at
    name: maybe fail
  - copy: greeting.txt
    to: /greeting.txt
image:
  cmd: [/bin/cat, /hello.txt]
  labels: {org.opencontainers.image.title: hello, org.example.override: recipe}
  annotations: {org.opencontainers.image.source: "https://example.invalid/recipe"}
`, map[string]string{"greeting.txt": "hi\n"})
}

// manifestOf reads the manifest of a layout's ref with skopeo.
func manifestOf(t *testing.T, layout, ref string) (m struct {
	Annotations map[string]string
	Layers      []struct{ MediaType, Digest string }
}) {
	t.Helper()
	raw := run(t, nil, "skopeo", "inspect", "--raw", "oci:"+layout+":"+ref)
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("manifest of %s:%s: %v\n%s", layout, ref, err, raw)
	}
	return m
}

// diffIDsOf reads the diffIDs of a layout's ref from its config, with skopeo.
func diffIDsOf(t *testing.T, layout, ref string) []string {
	t.Helper()
	var cfg struct {
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	raw := run(t, nil, "skopeo", "inspect", "--config", "oci:"+layout+":"+ref)
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("config of %s:%s: %v", layout, ref, err)
	}
	return cfg.RootFS.DiffIDs
}

type metadataFile struct {
	ImageDigest          string `json:"image.digest"`
	ContainerImageDigest string `json:"containerimage.digest"`
	Steps                []struct {
		Pos    string
		Cached bool
		Layer  *struct {
			Digest    string `json:"digest"`
			MediaType string `json:"media_type"`
		}
	}
}

func readMetadata(t *testing.T, path string) metadataFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m metadataFile
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, data)
	}
	return m
}

// TestBuildxFlags: -q prints the digest on one line and nothing on
// stderr; --iidfile holds that digest; --metadata-file has it under
// buildx's key; --label and --annotation land in the config and the
// manifest, over the recipe's.
func TestBuildxFlags(t *testing.T) {
	requireBuildTools(t)
	requireTools(t, "skopeo")
	ctx, out := helloContext(t), filepath.Join(t.TempDir(), "oci")
	files := t.TempDir()
	iid, meta := filepath.Join(files, "iid"), filepath.Join(files, "metadata.json")
	r := strata(t, nil, "build", "-q", "--root", t.TempDir(), "--build-arg", busyboxBase(t),
		"--label", "org.example.override=flag", "--label", "org.opencontainers.image.version=1.2.3",
		"--annotation", "org.opencontainers.image.source=https://example.invalid/flag",
		"--annotation", "manifest:org.opencontainers.image.revision=abc123",
		"--iidfile", iid, "--metadata-file", meta, "-t", "hello:1", "-o", "type=oci,dest="+out, ctx)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if r.stderr != "" {
		t.Errorf("-q: stderr = %q, want nothing", r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "sha256:") {
		t.Fatalf("-q: stdout = %q, want one line, the digest", r.stdout)
	}
	digest := lines[0]
	if got, err := os.ReadFile(iid); err != nil || string(got) != digest {
		t.Errorf("--iidfile holds %q (%v), want the printed digest %q", got, err, digest)
	}
	if m := readMetadata(t, meta); m.ContainerImageDigest != digest || m.ImageDigest != digest {
		t.Errorf("metadata: containerimage.digest %q, image.digest %q; want %q", m.ContainerImageDigest, m.ImageDigest, digest)
	}
	if got := ociIndexDigest(t, out, "hello:1"); got != digest {
		t.Errorf("the layout holds %s, the printed digest is %s", got, digest)
	}

	cfg := imageConfig(t, "oci:"+out+":hello:1")
	wantLabels := map[string]string{"org.opencontainers.image.title": "hello", "org.example.override": "flag", "org.opencontainers.image.version": "1.2.3"}
	if d := cmp.Diff(wantLabels, cfg.Labels); d != "" {
		t.Errorf("config labels (-want +got):\n%s", d)
	}
	m := manifestOf(t, out, "hello:1")
	for k, v := range map[string]string{"org.opencontainers.image.source": "https://example.invalid/flag", "org.opencontainers.image.revision": "abc123"} {
		if m.Annotations[k] != v {
			t.Errorf("manifest annotation %s = %q, want %q (all: %v)", k, m.Annotations[k], v, m.Annotations)
		}
	}
}

// TestQuietFailure: with -q a failing build prints nothing to stdout and,
// on stderr, only the error with the failed step's output tail.
func TestQuietFailure(t *testing.T) {
	requireBuildTools(t)
	r := strata(t, nil, "build", "-q", "--root", t.TempDir(), "--build-arg", busyboxBase(t), "--build-arg", "FAIL=1", helloContext(t))
	if r.code != 1 || r.stdout != "" {
		t.Fatalf("exit %d, stdout %q; want exit 1 and nothing", r.code, r.stdout)
	}
	for _, want := range []string{"strata.yaml:6: step 2 \"maybe fail\": run exited with status 3", "the tail of a failing step"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "cache miss") || strings.Contains(r.stderr, "write /hello.txt") {
		t.Errorf("-q: stderr shows progress:\n%s", r.stderr)
	}
}

// TestCompressionSwitchRunsNothing: a build with --compression gzip, then
// the same with --compression zstd: the second runs no step and outputs
// zstd layers with the same diffIDs; back to gzip gives the first image.
func TestCompressionSwitchRunsNothing(t *testing.T) {
	requireBuildTools(t)
	requireTools(t, "skopeo")
	env := []string{"SOURCE_DATE_EPOCH=1700000000"}
	root, ctx, work := t.TempDir(), helloContext(t), t.TempDir()
	build := func(name string, flags ...string) (digest string, meta metadataFile) {
		t.Helper()
		args := append([]string{"--root", root, "--build-arg", busyboxBase(t), "--metadata-file", filepath.Join(work, name+".json"),
			"-t", "hello:" + name, "-o", "type=oci,dest=" + filepath.Join(work, name)}, flags...)
		digest = mustBuild(t, env, append(args, ctx)...)
		return digest, readMetadata(t, filepath.Join(work, name+".json"))
	}
	gz, _ := build("gzip", "--compression", "gzip")
	zs, meta := build("zstd", "--compression", "zstd")
	for _, s := range meta.Steps {
		if !s.Cached {
			t.Errorf("zstd build: step %s ran, want every step cached", s.Pos)
		}
	}
	gzLayout, zsLayout := filepath.Join(work, "gzip"), filepath.Join(work, "zstd")
	gzm, zsm := manifestOf(t, gzLayout, "hello:gzip"), manifestOf(t, zsLayout, "hello:zstd")
	if len(gzm.Layers) != 4 || len(zsm.Layers) != 4 {
		t.Fatalf("%d and %d layers, want 4 (busybox + 3 steps)", len(gzm.Layers), len(zsm.Layers))
	}
	for i, l := range zsm.Layers[1:] { // the base keeps its blob
		if l.MediaType != "application/vnd.oci.image.layer.v1.tar+zstd" {
			t.Errorf("zstd build: step layer %d is %s", i+1, l.MediaType)
		}
		if gzm.Layers[i+1].MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
			t.Errorf("gzip build: step layer %d is %s", i+1, gzm.Layers[i+1].MediaType)
		}
	}
	if d := cmp.Diff(diffIDsOf(t, gzLayout, "hello:gzip"), diffIDsOf(t, zsLayout, "hello:zstd")); d != "" {
		t.Errorf("diffIDs differ between the gzip and zstd builds (-gzip +zstd):\n%s", d)
	}
	if gz == zs {
		t.Error("the gzip and zstd images have the same digest")
	}
	again, meta := build("gzip-again", "--compression", "gzip")
	if again != gz {
		t.Errorf("gzip again: %s, want the first build's %s", again, gz)
	}
	for _, s := range meta.Steps {
		if !s.Cached {
			t.Errorf("gzip again: step %s ran", s.Pos)
		}
	}
}

// TestLocalDirCacheSharedByRoots: two CI jobs — two state roots — share a
// local directory cache (buildx's type=local): the second runs nothing and
// builds the same image.
func TestLocalDirCacheSharedByRoots(t *testing.T) {
	requireBuildTools(t)
	env := []string{"SOURCE_DATE_EPOCH=1700000000"}
	ctx, cacheDir, work := helloContext(t), filepath.Join(t.TempDir(), "ci-cache"), t.TempDir()
	a := mustBuild(t, env, "--root", t.TempDir(), "--build-arg", busyboxBase(t),
		"--cache-to", "type=local,dest="+cacheDir+",mode=max", ctx)
	for _, p := range []string{"strata-cache.json", "entries", "blobs/sha256"} {
		if _, err := os.Stat(filepath.Join(cacheDir, p)); err != nil {
			t.Errorf("the cache directory lacks %s: %v", p, err)
		}
	}
	meta := filepath.Join(work, "b.json")
	r := strata(t, env, "build", "--root", t.TempDir(), "--build-arg", busyboxBase(t),
		"--cache-from", "type=local,src="+cacheDir, "--metadata-file", meta, ctx)
	if r.code != 0 {
		t.Fatalf("second root: exit %d\n%s", r.code, r.stderr)
	}
	if b := strings.TrimSpace(r.stdout); b != a {
		t.Errorf("second root built %s, the first %s", b, a)
	}
	m := readMetadata(t, meta)
	if len(m.Steps) != 3 {
		t.Fatalf("%d steps in the metadata, want 3", len(m.Steps))
	}
	for _, s := range m.Steps {
		if !s.Cached {
			t.Errorf("second root: step %s ran, want it cached", s.Pos)
		}
	}
	if !strings.Contains(r.stderr, "cache hit in local cache "+cacheDir) {
		t.Errorf("the progress does not name the local cache:\n%s", r.stderr)
	}
}
