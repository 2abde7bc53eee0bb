package layers

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

var (
	randomSeed = flag.Uint64("layers.seed", 0, "run TestRandomRoundTrip with this seed only")
	randomOpsN = flag.Int("layers.ops", 300, "operations per TestRandomRoundTrip seed")
)

// TestRandomRoundTrip runs random file system operations on a real overlay
// over a random lower tree, diffs the upper dir, applies the tar to a fresh
// copy of the lower tree and compares with the merged view: types, modes,
// owners, contents, xattrs and hardlinks. A failure names its seed; rerun
// it with -layers.seed=N.
func TestRandomRoundTrip(t *testing.T) {
	requireOverlay(t)
	seeds := []uint64{1, 2, 3, 4}
	if *randomSeed != 0 {
		seeds = []uint64{*randomSeed}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			lower := filepath.Join(t.TempDir(), "lower")
			randomTree(t, lower, seed)
			var log []string
			upper, merged := overlayRun(t, []string{lower}, func(m string) {
				log = randomOps(t, m, rand.New(rand.NewPCG(seed, 99)), *randomOpsN)
			})
			clone, cst := trimOnlyClone(t, DiffOptions{Upper: upper, Lowers: []string{lower}})
			tarball, st := mustDiff(t, DiffOptions{Upper: upper, Lowers: []string{lower}})
			assertSameTrim(t, clone, cst, upper, st, tarball, DiffOptions{Lowers: []string{lower}})
			// The trimmed upper dir (a snapshot) diffs to the same bytes
			// again: a layer can be compressed later from its snapshot.
			if again, _ := mustDiff(t, DiffOptions{Upper: upper, Lowers: []string{lower}, KeepUpper: true}); !bytes.Equal(again, tarball) {
				t.Errorf("seed %d: the trimmed upper dir diffs to another tar (%d bytes, first %d)", seed, len(again), len(tarball))
			}
			applied := filepath.Join(t.TempDir(), "applied")
			randomTree(t, applied, seed)
			if err := Apply(t.Context(), applied, bytes.NewReader(tarball)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(merged, scan(t, applied)); diff != "" {
				t.Errorf("seed %d: lower + layer differs from the merged view (-merged +applied):\n%s\nops:\n%s",
					seed, diff, strings.Join(log, "\n"))
			}
			_, again := overlayRun(t, []string{upper, lower}, func(string) {})
			if diff := cmp.Diff(merged, again); diff != "" {
				t.Errorf("seed %d: trimmed upper as a lower differs from the merged view (-merged +again):\n%s", seed, diff)
			}
			assertUnpackedView(t, tarball, lower, merged)
		})
	}
}

var (
	randModes  = []uint32{0o644, 0o755, 0o600, 0o4755, 0o2755, 0o1777, 0o444}
	randOwners = []int{0, 1000, 65534}
)

func randName(r *rand.Rand) string {
	names := []string{"a", "b", "c", "etc", "lib", "x.conf", "dpkg-new", "\xff\xfe", strings.Repeat("n", 120)}
	return names[r.IntN(len(names))] + fmt.Sprint(r.IntN(4))
}

func randContent(r *rand.Rand) []byte {
	b := make([]byte, r.IntN(3000))
	for i := range b {
		b[i] = byte('a' + r.IntN(4))
	}
	return b
}

// randomTree makes the same tree for the same seed.
func randomTree(t *testing.T, root string, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	mkdir(t, root, 0o755)
	dirs := []string{root}
	var files []string
	for range 150 {
		parent := dirs[r.IntN(len(dirs))]
		p := filepath.Join(parent, randName(r))
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		switch k := r.IntN(10); {
		case k < 3:
			must(t, os.Mkdir(p, 0o755))
			dirs = append(dirs, p)
		case k < 8:
			must(t, os.WriteFile(p, randContent(r), 0o644))
			files = append(files, p)
		case k < 9:
			must(t, os.Symlink("../"+randName(r), p))
		default:
			if len(files) > 0 {
				must(t, os.Link(files[r.IntN(len(files))], p))
			}
		}
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink == 0 {
			must(t, unix.Chmod(p, randModes[r.IntN(len(randModes))]|0o500))
			must(t, os.Lchown(p, randOwners[r.IntN(3)], randOwners[r.IntN(3)]))
			if r.IntN(4) == 0 {
				v := randContent(r)
				must(t, unix.Lsetxattr(p, "user.k"+fmt.Sprint(r.IntN(2)), v[:min(len(v), r.IntN(8))], 0))
			}
		}
	}
}

// randomOps applies n random operations below m and returns what it did.
// Operations the kernel refuses (EXDEV, ENOTEMPTY, ...) are skipped.
func randomOps(t *testing.T, m string, r *rand.Rand, n int) []string {
	var log []string
	for range n {
		var all, dirs, regs []string
		dirs = append(dirs, m)
		filepath.WalkDir(m, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == m {
				return nil
			}
			all = append(all, p)
			if d.IsDir() {
				dirs = append(dirs, p)
			} else if d.Type().IsRegular() {
				regs = append(regs, p)
			}
			return nil
		})
		pick := func(s []string) string {
			if len(s) == 0 {
				return m
			}
			return s[r.IntN(len(s))]
		}
		fresh := filepath.Join(pick(dirs), randName(r))
		if _, err := os.Lstat(fresh); err == nil {
			fresh += "~" // writing an existing fifo would block
			if _, err := os.Lstat(fresh); err == nil {
				continue
			}
		}
		var desc string
		var err error
		switch r.IntN(19) {
		case 0:
			desc, err = "create "+fresh, os.WriteFile(fresh, randContent(r), 0o644)
		case 1:
			p := pick(regs)
			desc, err = "overwrite "+p, os.WriteFile(p, randContent(r), 0o644)
		case 2:
			p := pick(regs)
			f, e := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err = e; err == nil {
				_, err = f.Write([]byte("more"))
				f.Close()
			}
			desc = "append " + p
		case 3:
			p := pick(all)
			desc, err = "remove "+p, os.Remove(p)
		case 4:
			p := pick(dirs[1:])
			desc, err = "rm -r "+p, os.RemoveAll(p)
		case 5:
			desc, err = "mkdir "+fresh, os.Mkdir(fresh, 0o755)
		case 6:
			p := pick(all)
			mode := randModes[r.IntN(len(randModes))] | 0o500
			desc, err = fmt.Sprintf("chmod %o %s", mode, p), unix.Fchmodat(unix.AT_FDCWD, p, mode, 0)
		case 7:
			p := pick(all)
			desc, err = "chown "+p, os.Lchown(p, randOwners[r.IntN(3)], randOwners[r.IntN(3)])
		case 8:
			p := pick(all)
			desc, err = "setxattr "+p, unix.Lsetxattr(p, "user.k"+fmt.Sprint(r.IntN(2)), []byte(fmt.Sprint(r.IntN(3))), 0)
		case 9:
			p := pick(all)
			desc, err = "removexattr "+p, unix.Lremovexattr(p, "user.k0")
		case 10:
			desc, err = "symlink "+fresh, os.Symlink(randName(r), fresh)
		case 11:
			p := pick(regs)
			desc, err = "link "+p+" "+fresh, os.Link(p, fresh)
		case 12:
			p := pick(all)
			desc, err = "rename "+p+" "+fresh, os.Rename(p, fresh)
		case 13:
			desc, err = "mkfifo "+fresh, unix.Mkfifo(fresh, 0o640)
		case 14:
			p := pick(all)
			when := time.Unix(r.Int64N(2e9), 0)
			desc, err = "touch "+p, unix.Lutimes(p, []unix.Timeval{unix.NsecToTimeval(when.UnixNano()), unix.NsecToTimeval(when.UnixNano())})
		case 15:
			p := pick(dirs[1:])
			if err = os.RemoveAll(p); err == nil {
				if err = os.Mkdir(p, 0o755); err == nil {
					err = os.WriteFile(filepath.Join(p, "again"), []byte("again"), 0o644)
				}
			}
			desc = "recreate " + p
		case 16:
			p := pick(regs)
			desc, err = "truncate "+p, os.Truncate(p, int64(r.IntN(100)))
		case 17:
			p := pick(all)
			var st unix.Stat_t
			if err = unix.Lstat(p, &st); err == nil {
				err = os.Lchown(p, int(st.Uid), int(st.Gid))
			}
			desc = "chown-same " + p
		case 18:
			p := pick(regs)
			b, e := os.ReadFile(p)
			if err = e; err == nil {
				err = os.WriteFile(p, b, 0)
			}
			desc = "rewrite-same " + p
		}
		if err != nil {
			desc += " (refused: " + err.Error() + ")"
		}
		log = append(log, strings.ReplaceAll(desc, m, ""))
	}
	return log
}

// TestRandomStack runs three random steps, each over the snapshots the
// previous ones made (Unpack of their diffs), so whiteouts and opaque dirs
// in lower layers meet new changes. Applying the three tars in order to
// the base tree must give the last merged view.
func TestRandomStack(t *testing.T) {
	requireOverlay(t)
	seeds := []uint64{1, 2}
	if *randomSeed != 0 {
		seeds = []uint64{*randomSeed}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			s := openStore(t)
			base := filepath.Join(t.TempDir(), "base")
			randomTree(t, base, seed)
			lowers := []string{base}
			var tars [][]byte
			var merged map[string]node
			for step := range uint64(3) {
				var upper string
				upper, merged = overlayRun(t, lowers, func(m string) {
					randomOps(t, m, rand.New(rand.NewPCG(seed, step)), *randomOpsN/2)
				})
				epoch := time.Now().Add(-time.Duration(step) * time.Hour) // clamps from the second step on
				clone, cst := trimOnlyClone(t, DiffOptions{Upper: upper, Lowers: lowers, Epoch: &epoch})
				tarball, st := mustDiff(t, DiffOptions{Upper: upper, Lowers: lowers, Epoch: &epoch})
				assertSameTrim(t, clone, cst, upper, st, tarball, DiffOptions{Lowers: lowers, Epoch: &epoch})
				if again, _ := mustDiff(t, DiffOptions{Upper: upper, Lowers: lowers, Epoch: &epoch, KeepUpper: true}); !bytes.Equal(again, tarball) {
					t.Errorf("seed %d step %d: the trimmed upper dir diffs to another tar", seed, step)
				}
				tars = append(tars, tarball)
				_, snap := unpack(t, s, tarball)
				lowers = append([]string{snap}, lowers...)
			}
			_, view := overlayRun(t, lowers, func(string) {})
			if diff := cmp.Diff(merged, view); diff != "" {
				t.Errorf("seed %d: snapshot stack differs from the last merged view (-merged +stack):\n%s", seed, diff)
			}
			applied := filepath.Join(t.TempDir(), "applied")
			randomTree(t, applied, seed)
			for _, tarball := range tars {
				must(t, Apply(t.Context(), applied, bytes.NewReader(tarball)))
			}
			if diff := cmp.Diff(merged, scan(t, applied)); diff != "" {
				t.Errorf("seed %d: base + 3 layers differs from the last merged view (-merged +applied):\n%s", seed, diff)
			}
		})
	}
}
