package main_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/internal/testutil"
)

// capNetBindService is a VFS_CAP_REVISION_2 security.capability value
// granting cap_net_bind_service+ep.
var capNetBindService = []byte{
	0x01, 0x00, 0x00, 0x02, // magic v2 | effective
	0x00, 0x04, 0x00, 0x00, // permitted, low 32 bits: bit 10
	0x00, 0x00, 0x00, 0x00, // inheritable, low
	0x00, 0x00, 0x00, 0x00, // permitted, high
	0x00, 0x00, 0x00, 0x00, // inheritable, high
}

// fidelityBase is the busybox layout with one more layer holding the files
// the fidelity recipe changes. It returns the layout dir.
func fidelityBase(t *testing.T) string {
	t.Helper()
	dir := testutil.BusyboxLayout(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	entries := []struct {
		hdr  tar.Header
		data string
	}{
		{tar.Header{Name: "fid/", Typeflag: tar.TypeDir, Mode: 0o755}, ""},
		{tar.Header{Name: "fid/gone", Typeflag: tar.TypeReg, Mode: 0o644}, "to be removed\n"},
		{tar.Header{Name: "fid/dir/", Typeflag: tar.TypeDir, Mode: 0o755}, ""},
		{tar.Header{Name: "fid/dir/a", Typeflag: tar.TypeReg, Mode: 0o644}, "a\n"},
		{tar.Header{Name: "fid/dir/b", Typeflag: tar.TypeReg, Mode: 0o644}, "b\n"},
		{tar.Header{Name: "fid/dir/sub/", Typeflag: tar.TypeDir, Mode: 0o755}, ""},
		{tar.Header{Name: "fid/dir/sub/c", Typeflag: tar.TypeReg, Mode: 0o644}, "c\n"},
		{tar.Header{Name: "fid/capfile", Typeflag: tar.TypeReg, Mode: 0o755, PAXRecords: map[string]string{
			"SCHILY.xattr.user.note":           "hello",
			"SCHILY.xattr.security.capability": string(capNetBindService),
		}}, "#!/bin/sh\necho cap\n"},
		{tar.Header{Name: "fid/target", Typeflag: tar.TypeReg, Mode: 0o644}, "target\n"},
	}
	for _, e := range entries {
		h := e.hdr
		h.Size = int64(len(e.data))
		h.ModTime = testutil.BusyboxEpoch
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(layoutImage(t, dir, testutil.BusyboxTag), l)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "base.oci")
	lp, err := layout.Write(out, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "fid"})); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFidelityCheckedWithUmoci drives the differ's hard cases through
// recipes with run steps and checks the image with umoci, which we did
// not write.
func TestFidelityCheckedWithUmoci(t *testing.T) {
	requireBuildTools(t)
	base := fidelityBase(t)
	ctx := writeRecipe(t, `from: oci-layout://`+base+`:fid
steps:
  - run: rm /fid/gone
  - run: rm -rf /fid/dir && mkdir /fid/dir && echo new > /fid/dir/new
  - run: chmod 0700 /fid/capfile
  - run: ln /fid/target /fid/link
  - run: "true"
`, map[string]string{})
	out := filepath.Join(t.TempDir(), "img.oci")
	mustBuild(t, nil, "--root", t.TempDir(), "-t", "fid:out", "-o", "type=oci,dest="+out, ctx)

	// The layers themselves: what each step committed.
	layers := builtLayers(t, out, "fid:out")
	if len(layers) != 4 {
		t.Fatalf("got %d new layers, want 4 (the last run changes nothing): %v", len(layers), layers)
	}
	want := [][]string{
		{"fid/", "fid/.wh.gone"},
		{"fid/", "fid/dir/", "fid/dir/.wh..wh..opq", "fid/dir/new"},
		{"fid/", "fid/capfile"},
		{"fid/", "fid/link", "fid/target"},
	}
	for i := range want {
		if d := cmp.Diff(want[i], names(layers[i])); d != "" {
			t.Errorf("layer %d entries (-want +got):\n%s", i+1, d)
		}
	}
	if h := find(layers[3], "fid/link", "fid/target"); h != nil && h.Typeflag != tar.TypeLink {
		t.Errorf("the new link is a %c entry, want a hardlink", h.Typeflag)
	}

	// The tree as umoci unpacks it.
	bundle := filepath.Join(t.TempDir(), "bundle")
	run(t, nil, "umoci", "unpack", "--image", out+":fid:out", bundle)
	rootfs := filepath.Join(bundle, "rootfs")
	if _, err := os.Lstat(filepath.Join(rootfs, "fid/gone")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("fid/gone survives: %v", err)
	}
	if d := cmp.Diff([]string{"new"}, listDir(t, filepath.Join(rootfs, "fid/dir"))); d != "" {
		t.Errorf("fid/dir (-want +got):\n%s", d)
	}
	capfile := filepath.Join(rootfs, "fid/capfile")
	fi, err := os.Lstat(capfile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("capfile mode %v, want 0700", fi.Mode().Perm())
	}
	for name, want := range map[string][]byte{"user.note": []byte("hello"), "security.capability": capNetBindService} {
		got := make([]byte, 256)
		n, err := unix.Lgetxattr(capfile, name, got)
		if err != nil {
			t.Errorf("capfile xattr %s: %v", name, err)
			continue
		}
		if !bytes.Equal(got[:n], want) {
			t.Errorf("capfile xattr %s = %q, want %q", name, got[:n], want)
		}
	}
	a, errA := os.Lstat(filepath.Join(rootfs, "fid/target"))
	b, errB := os.Lstat(filepath.Join(rootfs, "fid/link"))
	if errA != nil || errB != nil {
		t.Fatalf("link or target missing: %v %v", errA, errB)
	}
	if a.Sys().(*syscall.Stat_t).Ino != b.Sys().(*syscall.Stat_t).Ino {
		t.Errorf("fid/link and fid/target are different inodes")
	}
	if data, _ := os.ReadFile(filepath.Join(rootfs, "fid/link")); string(data) != "target\n" {
		t.Errorf("fid/link holds %q", data)
	}
	if _, err := os.Stat(filepath.Join(rootfs, "bin/busybox")); err != nil {
		t.Errorf("base layer lost: %v", err)
	}
}

// builtLayers returns the tar headers of the layers strata added on top of
// the fidelity base, in order.
func builtLayers(t *testing.T, layoutDir, ref string) [][]*tar.Header {
	t.Helper()
	img := layoutImage(t, layoutDir, ref)
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]*tar.Header
	for _, l := range ls[2:] { // busybox + the fidelity base layer
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		var hdrs []*tar.Header
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			hdrs = append(hdrs, h)
		}
		rc.Close()
		out = append(out, hdrs)
	}
	return out
}

func layoutImage(t *testing.T, dir, ref string) v1.Image {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		if d.Annotations["org.opencontainers.image.ref.name"] == ref {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
	}
	t.Fatalf("no %s in %s", ref, dir)
	return nil
}

func names(hdrs []*tar.Header) []string {
	var out []string
	for _, h := range hdrs {
		out = append(out, strings.TrimPrefix(h.Name, "./"))
	}
	sort.Strings(out)
	return out
}

// find returns the header named one of names that comes second in the
// tar: for a hardlink pair, the link entry.
func find(hdrs []*tar.Header, names ...string) *tar.Header {
	var seen []*tar.Header
	for _, h := range hdrs {
		for _, n := range names {
			if strings.TrimPrefix(h.Name, "./") == n {
				seen = append(seen, h)
			}
		}
	}
	if len(seen) < 2 {
		return nil
	}
	return seen[1]
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}
