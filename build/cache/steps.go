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
//	index/steps/.complete                                    when every entry last got its file
//
// so that explaining a miss (Nearest) reads the entries of one step, not
// every entry of the index: on a root many builds share that was a read
// and a parse of each entry at each miss (~120 ms a miss with 5,000
// entries). A step's file is a hint, made after its entry without a sync:
// hits and misses never depend on these files, only the explanation of a
// miss does. A file whose entry is gone, or now belongs to another step
// (a key is the same whatever the step), is skipped and removed; Prune
// keeps the files of the entries it keeps and no others.
//
// An entry can lack its file: the index was written before these files
// existed, an older strata shares the root, or a crash lost the file.
// Nearest gives every entry its file when .complete is missing or stale
// (older than remarkAge, or ahead of the clock), reading every entry
// once, and Get gives a hit's entry its file; in between, a miss is
// explained against the last entry that has one.
const stepsDir = "steps"

// completeFile marks when every entry of the index last got its step's
// file.
const completeFile = ".complete"

// remarkAge is how long the step files are trusted to be complete before
// every entry is read again, for the entries an older strata wrote.
const remarkAge = 24 * time.Hour

// stepDir is the dir of the files of the entries of stepID.
func (l *Local) stepDir(stepID string) string {
	sum := sha256.Sum256([]byte(stepID))
	return filepath.Join(l.dir, stepsDir, hex.EncodeToString(sum[:16]))
}

// stepFile is the file recording that the entry of key is one of stepID.
func (l *Local) stepFile(stepID, key string) string {
	return filepath.Join(l.stepDir(stepID), keyHex(key))
}

// markStep records that e is an entry of its step; callers that only
// hint may ignore its error.
func (l *Local) markStep(e *Entry) error {
	if e.Inputs.StepID == "" {
		return nil
	}
	p := l.stepFile(e.Inputs.StepID, e.Key)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// pruneSteps removes every step file but those of kept, each in its
// step's dir, and the dirs left empty (best effort: they are hints).
func (l *Local) pruneSteps(kept []*Entry) {
	want := map[string]bool{}
	for _, e := range kept {
		if e.Inputs.StepID != "" {
			want[l.stepFile(e.Inputs.StepID, e.Key)] = true
		}
	}
	root := filepath.Join(l.dir, stepsDir)
	dirs, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		dir := filepath.Join(root, d.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		left := len(files)
		for _, f := range files {
			if p := filepath.Join(dir, f.Name()); !want[p] && os.Remove(p) == nil {
				left--
			}
		}
		if left == 0 {
			_ = os.Remove(dir)
		}
	}
}

// Nearest returns the most recently used entry made for the same step
// (StepID), to explain a miss: of the same platform if there is one (the
// step of a multi-platform build is one step per platform, whose other
// platform's entry differs in base, platform and text), else of any; nil
// if there is none.
func (l *Local) Nearest(stepID, platform string) *Entry {
	done := filepath.Join(l.dir, stepsDir, completeFile)
	if fi, err := os.Stat(done); err != nil || stale(fi.ModTime()) {
		return l.markAll(stepID, platform, done)
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
	var any *Entry
	for _, c := range cs {
		e, ok := l.entry(c.key)
		if !ok {
			continue
		}
		if e.Inputs.StepID != stepID {
			_ = os.Remove(filepath.Join(dir, keyHex(c.key))) // the key was put again by another step
			continue
		}
		e.LastUsed = c.used
		if e.Inputs.Platform() == platform {
			return e
		}
		if any == nil {
			any = e
		}
	}
	return any
}

// stale reports whether step files marked complete at t are due to be
// checked again: a day later, or at once if t is ahead of the clock (set
// back since), which would otherwise put the next check off for as long.
func stale(t time.Time) bool {
	age := time.Since(t)
	return age > remarkAge || age < -time.Minute
}

// markAll reads every entry, gives each its step's file and, if every
// entry got one, records that in done; it returns the entry
// Nearest(stepID, platform) is, from what it read.
func (l *Local) markAll(stepID, platform, done string) *Entry {
	entries, err := l.Entries()
	if err != nil {
		return nil
	}
	var best *Entry
	bestSame := false // best is of platform
	complete := true
	for _, e := range entries {
		if l.markStep(e) != nil {
			complete = false
		}
		if e.Inputs.StepID != stepID {
			continue
		}
		if same := e.Inputs.Platform() == platform; best == nil ||
			same && !bestSame || same == bestSame && e.LastUsed.After(best.LastUsed) {
			best, bestSame = e, same
		}
	}
	if complete && os.MkdirAll(filepath.Dir(done), 0o700) == nil {
		_ = os.WriteFile(done, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600)
	}
	return best
}

func keyHex(key string) string { return strings.TrimPrefix(key, "sha256:") }
