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

// newIndex opens a new, empty index; dir is the index's dir.
func newIndex(t *testing.T) (ix *Local, dir string) {
	t.Helper()
	dir = t.TempDir()
	ix, err := OpenLocal(dir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return ix, dir
}

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

// nearestWithin is ix.Nearest(stepID, ""), failing the test if it does not
// return within a few seconds (it read a FIFO standing for an entry).
func nearestWithin(t *testing.T, ix *Local, stepID string) *Entry {
	t.Helper()
	got := make(chan *Entry, 1)
	go func() { got <- ix.Nearest(stepID, "") }()
	select {
	case e := <-got:
		return e
	case <-time.After(5 * time.Second):
		t.Fatalf("Nearest(%q) did not return: it opened an entry of another step", stepID)
		return nil
	}
}

func TestNearestReadsOnlyItsStep(t *testing.T) {
	ix, _ := newIndex(t)
	putAged(t, ix, "a.yaml::1", "make a", 3*time.Hour)
	want := putAged(t, ix, "a.yaml::1", "make b", time.Hour)
	putAged(t, ix, "a.yaml::1", "make c", 2*time.Hour)
	other := putAged(t, ix, "b.yaml::1", "make d", 0)
	putAged(t, ix, "b.yaml::2", "make e", 0)

	if got := ix.Nearest("a.yaml::1", ""); got == nil || got.Key != want.Key {
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
	ix, dir := newIndex(t)
	oldest := putAged(t, ix, "a.yaml::1", "make a", 3*time.Hour)
	newest := putAged(t, ix, "a.yaml::1", "make b", time.Hour)
	putAged(t, ix, "b.yaml::1", "make c", 0)
	// An index as strata wrote it before the step files: entries only.
	if err := os.RemoveAll(filepath.Join(dir, stepsDir)); err != nil {
		t.Fatal(err)
	}
	if got := ix.Nearest("a.yaml::1", ""); got == nil || got.Key != newest.Key {
		t.Fatalf("Nearest = %v, want %q", got, newest.Inputs.Step)
	}
	if _, err := os.Stat(filepath.Join(dir, stepsDir, completeFile)); err != nil {
		t.Errorf("the index has no %s after its entries got their step files: %v", completeFile, err)
	}
	for _, e := range []*Entry{oldest, newest} {
		if _, err := os.Stat(ix.stepFile(e.Inputs.StepID, e.Key)); err != nil {
			t.Errorf("entry %q has no step file: %v", e.Inputs.Step, err)
		}
	}

	// An entry removed behind the index's back (an older strata's
	// prune): its step file is skipped, then removed.
	if err := os.Remove(ix.path(newest.Key)); err != nil {
		t.Fatal(err)
	}
	if got := ix.Nearest("a.yaml::1", ""); got == nil || got.Key != oldest.Key {
		t.Errorf("Nearest after the newest entry went = %v, want %q", got, oldest.Inputs.Step)
	}
	if _, err := os.Stat(ix.stepFile("a.yaml::1", newest.Key)); !os.IsNotExist(err) {
		t.Errorf("the step file of a removed entry is still there (%v)", err)
	}
}

func TestPruneRemovesStepFiles(t *testing.T) {
	ix, _ := newIndex(t)
	kept := putAged(t, ix, "a.yaml::1", "make a", 0)
	gone := putAged(t, ix, "a.yaml::1", "make b", 10*time.Hour)
	alone := putAged(t, ix, "b.yaml::1", "make c", 10*time.Hour)
	// A file left in a step's dir for an entry that is gone (an older
	// strata's prune) goes too, with its dir.
	orphan := filepath.Join(ix.stepDir("c.yaml::1"), fmt.Sprintf("%064d", 1))
	if err := os.MkdirAll(filepath.Dir(orphan), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(orphan, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := ix.Prune(context.Background(), PruneOptions{KeepDuration: 5 * time.Hour}, noSnapshots{})
	if err != nil || res.EntriesRemoved != 2 {
		t.Fatalf("prune: %+v, %v; want 2 entries removed", res, err)
	}
	for _, c := range []struct {
		e    *Entry
		want bool
	}{{kept, true}, {gone, false}, {alone, false}} {
		_, err := os.Stat(ix.stepFile(c.e.Inputs.StepID, c.e.Key))
		if got := err == nil; got != c.want {
			t.Errorf("step file of %q there = %v, want %v", c.e.Inputs.Step, got, c.want)
		}
	}
	for _, step := range []string{"b.yaml::1", "c.yaml::1"} {
		if _, err := os.Stat(ix.stepDir(step)); !os.IsNotExist(err) {
			t.Errorf("the dir of %s, with no entry left, is still there (%v)", step, err)
		}
	}
}

func TestNearestOfAKeyPutAgainByAnotherStep(t *testing.T) {
	ix, _ := newIndex(t)
	first := putAged(t, ix, "a.yaml::2", "make", time.Hour)
	if got := ix.Nearest("a.yaml::2", ""); got == nil || got.Key != first.Key {
		t.Fatalf("Nearest = %v, want %q", got, first.Inputs.Step)
	}
	if fi, err := os.Stat(ix.path(first.Key)); err != nil || ix.Nearest("a.yaml::2", "").LastUsed != fi.ModTime() {
		t.Errorf("Nearest's LastUsed is not when its entry was last used (%v)", err)
	}
	// The step ID is not part of the key: the same inputs at another
	// position of another recipe put the same key again.
	again := first.Inputs
	again.StepID = "b.yaml::7"
	if err := ix.Put(context.Background(), &Entry{Key: first.Key, Inputs: again}, nil); err != nil {
		t.Fatal(err)
	}
	if got := ix.Nearest("a.yaml::2", ""); got != nil {
		t.Errorf("Nearest of a.yaml's step = the entry b.yaml's step now holds (%q)", got.Inputs.StepID)
	}
	if _, err := os.Stat(ix.stepFile("a.yaml::2", first.Key)); !os.IsNotExist(err) {
		t.Errorf("the step file of an entry another step put again is still there (%v)", err)
	}
	if got := ix.Nearest("b.yaml::7", ""); got == nil || got.Key != first.Key {
		t.Errorf("Nearest of b.yaml's step = %v, want the entry it put", got)
	}
}

func TestEntriesWithoutStepFilesAreFound(t *testing.T) {
	ix, dir := newIndex(t)
	marked := putAged(t, ix, "a.yaml::1", "make a", 2*time.Hour)
	ix.Nearest("a.yaml::1", "") // the index is complete
	// An entry an older strata wrote into the index since: no step file.
	unmarked := putAged(t, ix, "a.yaml::1", "make b", time.Hour)
	if err := os.Remove(ix.stepFile("a.yaml::1", unmarked.Key)); err != nil {
		t.Fatal(err)
	}
	if got := ix.Nearest("a.yaml::1", ""); got == nil || got.Key != marked.Key {
		t.Fatalf("Nearest = %v, want the entry with a step file (%q): the files are trusted for a day", got, marked.Inputs.Step)
	}
	// A hit gives its entry its step file.
	if h, err := ix.Get(context.Background(), unmarked.Key); err != nil || h == nil {
		t.Fatalf("Get = %v, %v", h, err)
	}
	if got := ix.Nearest("a.yaml::1", ""); got == nil || got.Key != unmarked.Key {
		t.Errorf("Nearest after a hit on the entry without a step file = %v, want %q", got, unmarked.Inputs.Step)
	}
	// A day after the last complete marking, every entry is read again.
	if err := os.Remove(ix.stepFile("a.yaml::1", unmarked.Key)); err != nil {
		t.Fatal(err)
	}
	done := filepath.Join(dir, stepsDir, completeFile)
	old := time.Now().Add(-remarkAge - time.Hour)
	if err := os.Chtimes(done, old, old); err != nil {
		t.Fatal(err)
	}
	if got := ix.Nearest("a.yaml::1", ""); got == nil || got.Key != unmarked.Key {
		t.Errorf("Nearest a day later = %v, want %q", got, unmarked.Inputs.Step)
	}
	if fi, err := os.Stat(done); err != nil || time.Since(fi.ModTime()) > time.Hour {
		t.Errorf("%s not renewed by the marking (%v)", completeFile, err)
	}
	if _, err := os.Stat(ix.stepFile("a.yaml::1", unmarked.Key)); err != nil {
		t.Errorf("the marking gave the entry no step file: %v", err)
	}
	// A .complete ahead of the clock (set back since) is no reason to
	// wait: every entry is read again at once.
	if err := os.Remove(ix.stepFile("a.yaml::1", unmarked.Key)); err != nil {
		t.Fatal(err)
	}
	ahead := time.Now().Add(365 * 24 * time.Hour)
	if err := os.Chtimes(done, ahead, ahead); err != nil {
		t.Fatal(err)
	}
	if got := ix.Nearest("a.yaml::1", ""); got == nil || got.Key != unmarked.Key {
		t.Errorf("Nearest with %s a year ahead = %v, want %q", completeFile, got, unmarked.Inputs.Step)
	}
}

func TestStepFilesCompleteOnlyWhenAllMade(t *testing.T) {
	ix, dir := newIndex(t)
	e := putAged(t, ix, "a.yaml::1", "make a", time.Hour)
	putAged(t, ix, "b.yaml::1", "make b", time.Hour)
	// An index without step files, where one step's file cannot be
	// made (a file stands where its dir would go).
	if err := os.RemoveAll(filepath.Join(dir, stepsDir)); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, stepsDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ix.stepDir("a.yaml::1"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := ix.Nearest("a.yaml::1", ""); got == nil || got.Key != e.Key {
		t.Errorf("Nearest = %v, want %q, from reading every entry", got, e.Inputs.Step)
	}
	if _, err := os.Stat(filepath.Join(dir, stepsDir, completeFile)); !os.IsNotExist(err) {
		t.Errorf("%s written though an entry got no step file (%v)", completeFile, err)
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
			ix.Nearest("strata.yaml::7", "") // the index's step files, once
			b.ResetTimer()
			for range b.N {
				if ix.Nearest("strata.yaml::7", "") == nil {
					b.Fatal("no entry of the step")
				}
			}
		})
	}
}

// TestNearestOfThePlatform: a miss of one platform's step is explained
// against that platform's last entry, not the other platform's used
// since (which differs in base, platform and text), with the step files
// or without.
func TestNearestOfThePlatform(t *testing.T) {
	ix, dir := newIndex(t)
	put := func(platform string, age time.Duration) *Entry {
		return putAged(t, ix, "a.yaml:build:1", `{"text":"make","kind":"run","platform":"`+platform+`"}`, age)
	}
	arm := put("linux/arm64", 2*time.Hour)
	amd := put("linux/amd64", time.Hour)
	// The first call of each pass reads every entry (no .complete yet),
	// the next ones the step's files.
	for _, pass := range [][]string{{"linux/amd64", "linux/arm64", "linux/s390x"}, {"linux/arm64", "linux/s390x", "linux/amd64"}} {
		if err := os.RemoveAll(filepath.Join(dir, stepsDir)); err != nil {
			t.Fatal(err)
		}
		for _, platform := range pass {
			want := map[string]*Entry{"linux/arm64": arm, "linux/amd64": amd, "linux/s390x": amd}[platform]
			if got := ix.Nearest("a.yaml:build:1", platform); got == nil || got.Key != want.Key {
				t.Errorf("%v: Nearest(%s) = %v, want the entry of %s", pass, platform, got, want.Inputs.Platform())
			}
		}
	}
}
