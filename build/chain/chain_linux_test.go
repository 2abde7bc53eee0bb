package chain_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/stratabuild/strata/build/chain"
	"github.com/stratabuild/strata/internal/testutil"
	"github.com/stratabuild/strata/layers"
)

// busybox is the test busybox image.
func busybox(t *testing.T) v1.Image {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(testutil.BusyboxLayout(t))
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// workspace is a workspace on a fresh snapshot store in dir.
func workspace(t *testing.T, dir string) *chain.Workspace {
	t.Helper()
	store, err := layers.OpenStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return &chain.Workspace{Store: store, Blobs: t.TempDir(), Mounts: t.TempDir(), Mounter: chain.Overlay{}}
}

// entries lists the names in a tar.
func entries(t *testing.T, b []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}

// A step on the busybox base, on real overlay: the base is unpacked once;
// the step's changes become a layer whose diffID is the sha256 of the tar
// Tar writes again from the snapshot, and the made layer is a lower of the
// next step without being unpacked. A step that changes nothing, or fails,
// leaves no layer, mount point or upper dir.
func TestStepsOnOverlay(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	storeDir := t.TempDir()
	w := workspace(t, storeDir)
	base, err := chain.Of(busybox(t), "base busybox")
	if err != nil {
		t.Fatal(err)
	}
	lowers, made, _, err := w.Lowers(ctx, base)
	if err != nil || made != 1 || len(lowers) != 1 {
		t.Fatalf("Lowers: %v, %d made, %d dirs; want 1 and 1", err, made, len(lowers))
	}
	if _, made, took, err := w.Lowers(ctx, base); err != nil || made != 0 || took != 0 {
		t.Fatalf("Lowers again: %v, %d made in %s; want none", err, made, took)
	}

	ran, err := w.Run(ctx, lowers, func(rootfs string) error {
		if err := os.WriteFile(filepath.Join(rootfs, "hello"), []byte("hi\n"), 0o644); err != nil {
			return err
		}
		return os.Remove(filepath.Join(rootfs, "etc/group"))
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := w.Commit(ctx, ran, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Stats.Added != 1 || m.Stats.Deleted != 1 {
		t.Errorf("stats %+v, want 1 added and 1 deleted", m.Stats)
	}
	var b bytes.Buffer
	if err := m.Tar(ctx, &b); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b.Bytes())
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != m.DiffID {
		t.Errorf("Tar's sha256 %s, the diff's %s", got, m.DiffID)
	}
	if got, want := entries(t, b.Bytes()), []string{"etc/", "etc/.wh.group", "hello"}; !slices.Equal(got, want) {
		t.Errorf("layer entries %q, want %q", got, want)
	}

	next := append(slices.Clone(base), m.Layer(nil)) // Layer(nil): its snapshot is made
	lowers, made, _, err = w.Lowers(ctx, next)
	if err != nil || made != 0 || len(lowers) != 2 {
		t.Fatalf("Lowers over the made layer: %v, %d made, %d dirs; want 0 and 2", err, made, len(lowers))
	}
	ran, err = w.Run(ctx, lowers, func(rootfs string) error {
		if _, err := os.Stat(filepath.Join(rootfs, "hello")); err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(rootfs, "etc/group")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("etc/group in the next step: %v, want it gone", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := w.Commit(ctx, ran, nil); err != nil {
		t.Errorf("a step that changed nothing: %v", err)
	} else if m.DiffID != "" {
		t.Errorf("a step that changed nothing made layer %s", m.DiffID)
	}

	boom := errors.New("boom")
	if _, err := w.Run(ctx, lowers, func(string) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("a failing step: %v, want %v", err, boom)
	}
	if left, _ := os.ReadDir(w.Mounts); len(left) != 0 {
		t.Errorf("mount points left: %v", left)
	}
	if left, _ := os.ReadDir(filepath.Join(storeDir, "tmp")); len(left) != 0 {
		t.Errorf("upper dirs left in the store: %v", left)
	}
}
