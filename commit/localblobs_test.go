package commit_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stratabuild/strata/commit"
)

// A base layer saved under the state root is what a later layout is written
// from: hardlinked, not fetched again.
func TestSaveBlobAndWithLocalBlobs(t *testing.T) {
	img := motdImage(t, "local\n")
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	base := ls[0] // busybox's layer, read from an OCI layout
	if _, ok := base.(*commit.Layer); ok {
		t.Fatal("the base layer is already local; the test proves nothing")
	}
	blobs := t.TempDir()
	saved, err := commit.SaveBlob(t.Context(), base, blobs)
	if err != nil {
		t.Fatal(err)
	}
	dg, _ := base.Digest()
	if saved.Path() != filepath.Join(blobs, dg.Hex) {
		t.Errorf("saved at %s", saved.Path())
	}
	again, err := commit.SaveBlob(t.Context(), base, blobs)
	if err != nil || again.Path() != saved.Path() {
		t.Errorf("second SaveBlob: %v %v", again, err)
	}

	out := filepath.Join(t.TempDir(), "layout")
	local := commit.WithLocalBlobs(img, blobs)
	if got, want := digestOf(t, local), digestOf(t, img); got != want {
		t.Fatalf("WithLocalBlobs changed the image: %s → %s", want, got)
	}
	if err := commit.WriteOCILayout(t.Context(), out, local, []string{"x"}); err != nil {
		t.Fatal(err)
	}
	a, err := os.Stat(saved.Path())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.Stat(filepath.Join(out, "blobs", "sha256", dg.Hex))
	if err != nil {
		t.Fatal(err)
	}
	if a.Sys().(*syscall.Stat_t).Ino != b.Sys().(*syscall.Stat_t).Ino {
		t.Error("the layout's blob is a copy, not a link to the saved blob")
	}
	if b.Mode().Perm()&0o044 != 0o044 {
		t.Errorf("the layout's blob has mode %v; others cannot read it", b.Mode())
	}
}
