package cache

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/stratabuild/strata/commit"
)

// TestRemoveUnrecorded: of the snapshots noted as stored before their
// entries, those whose entry was then recorded (Put drops the note) stay;
// the rest go, one that a later step's entry lists below its layer too
// (it has no blob: a hit on that entry runs the step below it again
// first), and so do the notes.
func TestRemoveUnrecorded(t *testing.T) {
	l, err := OpenLocal(t.TempDir(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	recorded, below, orphan := digest.FromString("recorded"), digest.FromString("below a recorded step"), digest.FromString("orphan")
	for _, d := range []digest.Digest{recorded, below, orphan} {
		if err := l.NoteUnrecorded(d.String()); err != nil {
			t.Fatal(err)
		}
	}
	e, _ := writeEntry(t, l, "a", "alpha", commit.Gzip)
	in := baseInputs()
	in.Step, in.Parent = "b", []string{below.String()}
	if err := l.Put(t.Context(), &Entry{Key: in.Key(), Inputs: in}, nil); err != nil {
		t.Fatal(err)
	}
	e.Layer.DiffID = recorded.String() // as if the entry were of that layer
	if err := l.Put(t.Context(), e, nil); err != nil {
		t.Fatal(err)
	}
	des, err := os.ReadDir(filepath.Join(l.dir, unrecordedDir))
	if err != nil || len(des) != 2 {
		t.Errorf("notes after the entries were put: %d (%v), want the two unrecorded ones", len(des), err)
	}
	snaps := &recordingSnapshots{snaps: map[digest.Digest]bool{recorded: true, below: true, orphan: true}}
	n, err := l.RemoveUnrecorded(t.Context(), snaps)
	if err != nil || n != 2 {
		t.Fatalf("RemoveUnrecorded = %d, %v; want 2 removed", n, err)
	}
	if !snaps.snaps[recorded] || snaps.snaps[below] || snaps.snaps[orphan] {
		t.Errorf("snapshots left %v, want the recorded one alone", snaps.snaps)
	}
	if l.HasUnrecorded() {
		t.Error("notes are left")
	}
	if n, err := l.RemoveUnrecorded(t.Context(), snaps); err != nil || n != 0 {
		t.Errorf("again: %d, %v; want nothing to do", n, err)
	}
}
