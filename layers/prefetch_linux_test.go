package layers

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
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
