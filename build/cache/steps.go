package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// The index keeps, beside its entries, which entries each step made:
//
//	index/steps/<32 hex of the step ID's sha256>/<key hex>   an empty file per entry
//	index/steps/.complete                                    every entry has its file
//
// so that explaining a miss (Nearest) reads the entries of one step, not
// every entry of the index: on a root many builds share that was a read
// and a parse of each entry at each miss (~170 ms a miss with 5,000
// entries). A step's file is a hint: it is made after its entry, without
// a sync; one whose entry is gone is skipped and removed; an entry
// without one only makes an explanation less precise (hits and misses
// never depend on these files).
// An index written before these files (no .complete) gets them once, at
// the first miss a build explains.
const stepsDir = "steps"

// completeFile marks that every entry of the index has its step's file.
const completeFile = ".complete"

// stepDir is the dir of the files of the entries of stepID.
func (l *Local) stepDir(stepID string) string {
	sum := sha256.Sum256([]byte(stepID))
	return filepath.Join(l.dir, stepsDir, hex.EncodeToString(sum[:16]))
}

// markStep records that e is an entry of its step (best effort).
func (l *Local) markStep(e *Entry) {
	if e.Inputs.StepID == "" {
		return
	}
	dir := l.stepDir(e.Inputs.StepID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	if f, err := os.OpenFile(filepath.Join(dir, keyHex(e.Key)), os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
		f.Close()
	}
}

// unmarkStep removes e's step file, and its step's dir once empty.
func (l *Local) unmarkStep(e *Entry) {
	if e.Inputs.StepID == "" {
		return
	}
	dir := l.stepDir(e.Inputs.StepID)
	_ = os.Remove(filepath.Join(dir, keyHex(e.Key)))
	_ = os.Remove(dir) // fails while other entries of the step are kept
}

// markAll gives every entry its step's file, once per index.
func (l *Local) markAll() error {
	done := filepath.Join(l.dir, stepsDir, completeFile)
	if _, err := os.Stat(done); err == nil {
		return nil
	}
	entries, err := l.Entries()
	if err != nil {
		return err
	}
	for _, e := range entries {
		l.markStep(e)
	}
	if err := os.MkdirAll(filepath.Dir(done), 0o700); err != nil {
		return err
	}
	return os.WriteFile(done, nil, 0o600)
}

// Nearest returns the most recently used entry made for the same step
// (StepID), to explain a miss; nil if there is none.
func (l *Local) Nearest(stepID string) *Entry {
	if l.markAll() != nil {
		return l.nearestByScan(stepID)
	}
	dir := l.stepDir(stepID)
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	type candidate struct {
		key  string
		used time.Time
	}
	var cs []candidate
	for _, de := range des {
		key := "sha256:" + de.Name()
		fi, err := os.Stat(l.path(key))
		if errors.Is(err, fs.ErrNotExist) {
			_ = os.Remove(filepath.Join(dir, de.Name())) // its entry was pruned
			continue
		}
		if err != nil {
			continue
		}
		cs = append(cs, candidate{key, fi.ModTime()})
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].used.After(cs[j].used) })
	for _, c := range cs {
		if e, ok := l.entry(c.key); ok && e.Inputs.StepID == stepID {
			e.LastUsed = c.used
			return e
		}
	}
	return nil
}

// nearestByScan is Nearest reading every entry, for an index whose step
// files cannot be made.
func (l *Local) nearestByScan(stepID string) *Entry {
	entries, err := l.Entries()
	if err != nil {
		return nil
	}
	var best *Entry
	for _, e := range entries {
		if e.Inputs.StepID == stepID && (best == nil || e.LastUsed.After(best.LastUsed)) {
			best = e
		}
	}
	return best
}

func keyHex(key string) string { return strings.TrimPrefix(key, "sha256:") }
