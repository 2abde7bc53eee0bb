package layers

import (
	"archive/tar"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"

	"github.com/stratabuild/strata/internal/owner"
)

// markers lists the unsynced markers of a store root, as BOOT/NAME.
func markers(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	boots, _ := os.ReadDir(filepath.Join(root, unsyncedDir))
	for _, b := range boots {
		ms, err := os.ReadDir(filepath.Join(root, unsyncedDir, b.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			out = append(out, b.Name()+"/"+m.Name())
		}
	}
	return out
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

// TestPublishMarksUnsynced: a snapshot is published with a marker of the
// current boot beside the store, never inside the snapshot; Remove drops
// the marker with the snapshot.
func TestPublishMarksUnsynced(t *testing.T) {
	requireOverlay(t)
	s := openStore(t)
	d, dir := unpack(t, s, tarOf(t, tarEntry{Name: "a", Type: tar.TypeReg, Mode: 0o644, Content: "x"}))
	boot, err := owner.BootID()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{boot + "/" + markerName(d)}, markers(t, s.Root())); diff != "" {
		t.Errorf("markers after Unpack (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a"}, dirNames(t, dir)); diff != "" {
		t.Errorf("snapshot holds (-want +got):\n%s", diff)
	}
	if err := s.Remove(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	if got := markers(t, s.Root()); len(got) != 0 {
		t.Errorf("markers after Remove: %v", got)
	}
}

// TestRestartDiscardsUnsynced: after a restart of the machine (the marker
// is of another boot), opening the store discards the snapshot it marks,
// which can then be unpacked again; a snapshot without a marker is kept.
func TestRestartDiscardsUnsynced(t *testing.T) {
	requireOverlay(t)
	root := t.TempDir()
	s, err := OpenStore(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	layer := tarOf(t, tarEntry{Name: "a", Type: tar.TypeReg, Mode: 0o644, Content: "unsynced"})
	kept := tarOf(t, tarEntry{Name: "b", Type: tar.TypeReg, Mode: 0o644, Content: "synced"})
	d, _ := unpack(t, s, layer)
	dk, _ := unpack(t, s, kept)
	// The kept one was synced: its marker went.
	if err := os.Remove(filepath.Join(root, unsyncedDir, s.boot, markerName(dk))); err != nil {
		t.Fatal(err)
	}
	// The machine restarts: the markers are of an earlier boot.
	if err := os.Rename(filepath.Join(root, unsyncedDir, s.boot), filepath.Join(root, unsyncedDir, "00000000-1111-2222-3333-444444444444")); err != nil {
		t.Fatal(err)
	}
	s, err = OpenStore(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Lookup(d); ok {
		t.Error("the unsynced snapshot of an earlier boot is still there")
	}
	if _, ok := s.Lookup(dk); !ok {
		t.Error("the synced snapshot was discarded")
	}
	if got := dirNames(t, filepath.Join(root, unsyncedDir)); len(got) != 0 {
		t.Errorf("unsynced dir after the restart holds %v, want nothing", got)
	}
	if _, dir := unpack(t, s, layer); dir == "" {
		t.Error("no snapshot after unpacking again")
	}
}

// TestOpenSettlesOldMarkers: markers of this boot older than settleAge
// are removed by the sync OpenStore starts (Close waits for it); younger
// ones stay, and so do the snapshots.
func TestOpenSettlesOldMarkers(t *testing.T) {
	requireOverlay(t)
	root := t.TempDir()
	s, err := OpenStore(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := unpack(t, s, tarOf(t, tarEntry{Name: "old", Type: tar.TypeReg, Mode: 0o644}))
	young, _ := unpack(t, s, tarOf(t, tarEntry{Name: "young", Type: tar.TypeReg, Mode: 0o644}))
	past := time.Now().Add(-2 * settleAge)
	if err := os.Chtimes(filepath.Join(root, unsyncedDir, s.boot, markerName(old)), past, past); err != nil {
		t.Fatal(err)
	}
	s, err = OpenStore(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if diff := cmp.Diff([]string{s.boot + "/" + markerName(young)}, markers(t, root)); diff != "" {
		t.Errorf("markers after the background sync (-want +got):\n%s", diff)
	}
	for _, d := range []string{old.String(), young.String()} {
		if _, ok := s.Lookup(digest.Digest(d)); !ok {
			t.Errorf("snapshot %s is gone", d)
		}
	}
}
