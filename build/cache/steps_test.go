package cache

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// putAged puts an entry of stepID whose step text is step, last used age
// ago.
func putAged(t *testing.T, ix *Local, stepID, step string, age time.Duration) *Entry {
	t.Helper()
	in := baseInputs()
	in.StepID, in.Step = stepID, step
	e := &Entry{Key: in.Key(), Inputs: in}
	if err := ix.Put(context.Background(), e, nil); err != nil {
		t.Fatal(err)
	}
	when := time.Now().Add(-age)
	if err := os.Chtimes(ix.path(e.Key), when, when); err != nil {
		t.Fatal(err)
	}
	return e
}

// nearestWithin is ix.Nearest(stepID), failing the test if it does not
// return within a few seconds (it read a FIFO standing for an entry).
func nearestWithin(t *testing.T, ix *Local, stepID string) *Entry {
	t.Helper()
	got := make(chan *Entry, 1)
	go func() { got <- ix.Nearest(stepID) }()
	select {
	case e := <-got:
		return e
	case <-time.After(5 * time.Second):
		t.Fatalf("Nearest(%q) did not return: it opened an entry of another step", stepID)
		return nil
	}
}

func TestNearestReadsOnlyItsStep(t *testing.T) {
	ix, err := OpenLocal(t.TempDir(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	putAged(t, ix, "a.yaml::1", "make a", 3*time.Hour)
	want := putAged(t, ix, "a.yaml::1", "make b", time.Hour)
	putAged(t, ix, "a.yaml::1", "make c", 2*time.Hour)
	other := putAged(t, ix, "b.yaml::1", "make d", 0)
	putAged(t, ix, "b.yaml::2", "make e", 0)

	if got := ix.Nearest("a.yaml::1"); got == nil || got.Key != want.Key {
		t.Fatalf("Nearest = %v, want the entry last used an hour ago (%q)", got, want.Inputs.Step)
	}
	// Another step's entry that would block whoever opens it: Nearest
	// of a.yaml's step must not read it.
	if err := os.Remove(ix.path(other.Key)); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(ix.path(other.Key), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := nearestWithin(t, ix, "a.yaml::1"); got == nil || got.Key != want.Key {
		t.Errorf("Nearest with a FIFO for another step's entry = %v, want %q", got, want.Inputs.Step)
	}
	if got := nearestWithin(t, ix, "c.yaml::1"); got != nil {
		t.Errorf("Nearest of a step never built = %q, want none", got.Inputs.Step)
	}
	in := want.Inputs
	in.Step = "make b all"
	if why := (&Cache{Local: ix}).Explain(&in); !strings.Contains(why, "make b all") {
		t.Errorf("Explain = %q, want the step's change against the entry used last", why)
	}
}

func TestNearestOfAnIndexWithoutStepFiles(t *testing.T) {
	dir := t.TempDir()
	ix, err := OpenLocal(dir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	oldest := putAged(t, ix, "a.yaml::1", "make a", 3*time.Hour)
	newest := putAged(t, ix, "a.yaml::1", "make b", time.Hour)
	putAged(t, ix, "b.yaml::1", "make c", 0)
	// An index as strata wrote it before the step files: entries only.
	if err := os.RemoveAll(filepath.Join(dir, stepsDir)); err != nil {
		t.Fatal(err)
	}
	if got := ix.Nearest("a.yaml::1"); got == nil || got.Key != newest.Key {
		t.Fatalf("Nearest = %v, want %q", got, newest.Inputs.Step)
	}
	if _, err := os.Stat(filepath.Join(dir, stepsDir, completeFile)); err != nil {
		t.Errorf("the index has no %s after its entries got their step files: %v", completeFile, err)
	}
	for _, e := range []*Entry{oldest, newest} {
		if _, err := os.Stat(filepath.Join(ix.stepDir(e.Inputs.StepID), keyHex(e.Key))); err != nil {
			t.Errorf("entry %q has no step file: %v", e.Inputs.Step, err)
		}
	}

	// An entry removed behind the index's back (an older strata's
	// prune): its step file is skipped, then removed.
	if err := os.Remove(ix.path(newest.Key)); err != nil {
		t.Fatal(err)
	}
	if got := ix.Nearest("a.yaml::1"); got == nil || got.Key != oldest.Key {
		t.Errorf("Nearest after the newest entry went = %v, want %q", got, oldest.Inputs.Step)
	}
	if _, err := os.Stat(filepath.Join(ix.stepDir("a.yaml::1"), keyHex(newest.Key))); !os.IsNotExist(err) {
		t.Errorf("the step file of a removed entry is still there (%v)", err)
	}
}

func TestPruneRemovesStepFiles(t *testing.T) {
	ix, err := OpenLocal(t.TempDir(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	kept := putAged(t, ix, "a.yaml::1", "make a", 0)
	gone := putAged(t, ix, "a.yaml::1", "make b", 10*time.Hour)
	alone := putAged(t, ix, "b.yaml::1", "make c", 10*time.Hour)
	res, err := ix.Prune(context.Background(), PruneOptions{KeepDuration: 5 * time.Hour}, noSnapshots{})
	if err != nil || res.EntriesRemoved != 2 {
		t.Fatalf("prune: %+v, %v; want 2 entries removed", res, err)
	}
	for _, c := range []struct {
		e    *Entry
		want bool
	}{{kept, true}, {gone, false}, {alone, false}} {
		_, err := os.Stat(filepath.Join(ix.stepDir(c.e.Inputs.StepID), keyHex(c.e.Key)))
		if got := err == nil; got != c.want {
			t.Errorf("step file of %q there = %v, want %v", c.e.Inputs.Step, got, c.want)
		}
	}
	if _, err := os.Stat(ix.stepDir("b.yaml::1")); !os.IsNotExist(err) {
		t.Errorf("the dir of a step with no entry left is still there (%v)", err)
	}
}

// BenchmarkNearest explains a miss in an index of n entries of 50 steps.
func BenchmarkNearest(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ix, err := OpenLocal(b.TempDir(), b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			for i := range n {
				in := baseInputs()
				in.StepID, in.Step = fmt.Sprintf("strata.yaml::%d", i%50), fmt.Sprint(i)
				if err := ix.Put(context.Background(), &Entry{Key: in.Key(), Inputs: in}, nil); err != nil {
					b.Fatal(err)
				}
			}
			ix.Nearest("strata.yaml::7") // the index's step files, once
			b.ResetTimer()
			for range b.N {
				if ix.Nearest("strata.yaml::7") == nil {
					b.Fatal("no entry of the step")
				}
			}
		})
	}
}
