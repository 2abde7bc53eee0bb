package layers

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestPrefetchSameTar: reading entries ahead changes nothing in the diff.
// Random upper dirs (those of TestRandomRoundTrip's seeds) are diffed
// with every dir read ahead and with none, and the tars and stats must be
// the same; so must the trimmed upper dirs, diffed again.
func TestPrefetchSameTar(t *testing.T) {
	requireOverlay(t)
	diff := func(t *testing.T, min int, o DiffOptions) ([]byte, DiffStats) {
		t.Helper()
		saved := prefetchMin
		prefetchMin = min
		defer func() { prefetchMin = saved }()
		return mustDiff(t, o)
	}
	const never = 1 << 30
	for _, seed := range []uint64{1, 2, 3, 4} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			lower := filepath.Join(t.TempDir(), "lower")
			randomTree(t, lower, seed)
			upper, _ := overlayRun(t, []string{lower}, func(m string) {
				randomOps(t, m, rand.New(rand.NewPCG(seed, 99)), 300)
			})
			o := DiffOptions{Upper: upper, Lowers: []string{lower}, KeepUpper: true}
			alone, stAlone := diff(t, never, o)
			ahead, stAhead := diff(t, 1, o)
			if !bytes.Equal(alone, ahead) || stAlone != stAhead {
				t.Errorf("seed %d: Diff read ahead = %d bytes %+v, walked alone = %d bytes %+v; want the same tar",
					seed, len(ahead), stAhead, len(alone), stAlone)
			}
			o.KeepUpper = false
			trimmed, _ := diff(t, 1, o)
			o.KeepUpper = true
			if again, _ := diff(t, never, o); !bytes.Equal(again, trimmed) {
				t.Errorf("seed %d: trimmed upper dir walked alone = %d bytes, read ahead before trimming = %d; want the same tar",
					seed, len(again), len(trimmed))
			}
		})
	}
}

// TestPrefetchUnchangedNotKept: what was read ahead of a file copied up
// without a change is not kept until Diff trims the upper dir, after the
// tar (it was: 2,000 such files of 60 KiB grew the heap by 132 MB). The
// live heap is measured as walk goes, from Skip.
func TestPrefetchUnchangedNotKept(t *testing.T) {
	requireOverlay(t)
	const files, size = 1000, 60 << 10 // 60 MB if kept
	content := strings.Repeat("x", size)
	lower, mtime := t.TempDir(), time.Unix(1600000000, 0)
	for i := range files {
		p := filepath.Join(lower, "d", fmt.Sprintf("f%04d", i))
		write(t, p, content, 0o644)
		must(t, os.Chtimes(p, mtime, mtime))
	}
	upper, _ := overlayDo(t, []string{lower}, func(m string) {
		for i := range files {
			p := filepath.Join(m, "d", fmt.Sprintf("f%04d", i))
			write(t, p, content, 0o644) // copied up, the same
			must(t, os.Chtimes(p, mtime, mtime))
		}
	}, false)
	live := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	base, most, seen := live(), uint64(0), 0
	skip := func(string) bool {
		if seen++; seen%100 == 0 {
			most = max(most, live())
		}
		return false
	}
	tarball, _ := mustDiff(t, DiffOptions{Upper: upper, Lowers: []string{lower}, KeepUpper: true, Skip: skip})
	if len(readTar(t, tarball)) != 0 {
		t.Fatalf("Diff of %d files copied up without a change wrote entries, want none", files)
	}
	if grown := int64(most) - int64(base); grown > 16<<20 {
		t.Errorf("Diff of %d unchanged copied-up files of %d KiB grew the live heap by %d MiB, want at most 16",
			files, size>>10, grown>>20)
	}
}

// TestPrefetchBudget: the content read ahead in the dirs walk is in, one
// inside the other, stays within the one budget of the differ (each
// level's prefetcher used to read up to 64 files of its own: 40 MiB
// here), is all given back, and the tar is the one walk writes alone.
func TestPrefetchBudget(t *testing.T) {
	requireOverlay(t)
	const levels, files, size = 20, 70, 32 << 10
	upper := t.TempDir()
	content := strings.Repeat("x", size)
	dir := upper
	for range levels {
		for i := range files {
			write(t, filepath.Join(dir, fmt.Sprintf("f%02d", i)), content, 0o644)
		}
		dir = filepath.Join(dir, "d") // walk's first entry: it goes down first
	}
	o := DiffOptions{Upper: upper, KeepUpper: true}
	d, err := newDiffer(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	var ahead bytes.Buffer
	if err := d.writeTar(t.Context(), &ahead, upper); err != nil {
		t.Fatal(err)
	}
	if peak := d.ahead.peak.Load(); peak > prefetchBudget || peak == 0 {
		t.Errorf("Diff of %d levels of %d files of %d KiB held at most %d KiB read ahead, want 1 to %d",
			levels, files, size>>10, peak>>10, prefetchBudget>>10)
	}
	if held := d.ahead.held.Load(); held != 0 {
		t.Errorf("Diff done holds %d bytes read ahead, want 0", held)
	}
	saved := prefetchMin
	prefetchMin = 1 << 30
	defer func() { prefetchMin = saved }()
	if alone, _ := mustDiff(t, o); !bytes.Equal(alone, ahead.Bytes()) {
		t.Errorf("Diff read ahead = %d bytes, walked alone = %d bytes; want the same tar", ahead.Len(), len(alone))
	}
}
