package cache

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

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

// countingStore is a --cache-from store whose every Get fails with err.
type countingStore struct {
	err  error
	gets int
}

func (s *countingStore) String() string { return "test store" }
func (s *countingStore) Get(context.Context, string) (*Hit, error) {
	s.gets++
	return nil, s.err
}
func (s *countingStore) Put(context.Context, *Entry, v1.Layer) error { return nil }

// TestStoreSetAsideAfterTimeout: a --cache-from store that does not answer
// in time is asked once in a build, not at every step (each would wait as
// long); one that refuses the connection (a registry restarting) is asked
// again at the next step.
func TestStoreSetAsideAfterTimeout(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		gets int
	}{
		{"timeout", fmt.Errorf("reading: %w", context.DeadlineExceeded), 1},
		{"refused", fmt.Errorf("reading: %w", syscall.ECONNREFUSED), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := OpenLocal(t.TempDir(), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			s := &countingStore{err: tc.err}
			c := &Cache{Local: l, From: []Store{s}}
			for _, step := range []string{"a", "b", "c"} {
				in := baseInputs()
				in.Step = step
				if h, err := c.Lookup(t.Context(), in.Key()); h != nil || err != nil {
					t.Fatalf("Lookup = %v, %v; want a miss", h, err)
				}
			}
			if s.gets != tc.gets {
				t.Errorf("the store was asked %d times in 3 steps, want %d", s.gets, tc.gets)
			}
		})
	}
}
