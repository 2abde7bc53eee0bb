package build

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/testutil"
	"github.com/stratabuild/strata/recipe"
)

// bgRecipe has a stage whose steps make layers, another built on it that
// copies from it, a step that changes no file and a metadata step.
const bgRecipe = `stages:
  - name: base
    from: scratch
    steps:
      - run: write /a.txt alpha
      - run: write /dir/b.txt beta
  - name: app
    from: base
    steps:
      - env: {X: y}
      - run: noop
      - copy: /dir/b.txt
        from: base
        to: /copied/b.txt
      - run: write /c.txt gamma
`

// sequential are the digests of bgRecipe's image and layers at epoch
// 1700000000 as strata made them when each layer was compressed before
// the next step started (main at 552d6d6, the same test run there; the
// images' digests again since history names no recipe line, which
// changed their configs alone).
var sequential = map[commit.Codec]struct {
	image  string
	layers []string
}{
	commit.CodecGzip: {"sha256:584ee33e6e8d74cf1f4eed65d5d34eca3e1c2da1e609b8150d962d392fed62ec", []string{
		"sha256:3158f8df073bced4da3ce88b9ae25d4b52e4315b0be7fffd92ca5c1c54093187",
		"sha256:470907e739fdafaf2950359c66d5334f90ec88647bb28c19fc89dca643945eb5",
		"sha256:399ccb8d3660e54313c3f82abb6b19f4dc534681dcef28a43b23225184379fa3",
		"sha256:1421ef36a83154664db6ed89a6ecbddf25624b0192dceea3f21685460576d4a8"}},
	commit.CodecZstd: {"sha256:e4f098f4e5af6c83c4a3f1eec61ddcaba498e43c337e07c4faf4b6e244a52fd7", []string{
		"sha256:e9c4766beeafd92d99edbdce465c4ac3e21df6033a3a1daaa8225f4021f1fe9c",
		"sha256:db665d681050204caba5e66aac288b15e88654737c6f5670d20e41132ac5f59e",
		"sha256:3ed8965b6b490864ebdcfd9b043ecf76e0b397dc4f9c660fb4dc732c984e6fbf",
		"sha256:8f0b21b1998f8c9c16930cade0b0ee36f349376f683eb2c49a19e37fc716e4ba"}},
}

// TestBackgroundCompressionSameImage: with layers compressed in the
// background, the image and every layer are the bytes the sequential path
// made, both on a fresh state root (the diffIDs learned as the layers are
// compressed: no lookup could hit) and on one whose cache holds another
// recipe's steps (each diffID hashed when its step exits, for the next
// step's lookup); the steps' records in the result are complete (digest,
// size, compression time), every step is in the cache (a second build
// runs nothing) and no upper dir is left in the store.
func TestBackgroundCompressionSameImage(t *testing.T) {
	// The pinned digests are of layers owned by root, as a root build
	// writes them (the copy from base keeps owners and makes /copied 0:0).
	testutil.RequireRoot(t)
	epoch := time.Unix(1700000000, 0)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "strata.yaml"), []byte(bgRecipe), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := recipe.Load(filepath.Join(dir, "strata.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "other.yaml"), []byte("from: scratch\nsteps:\n  - run: write /other.txt other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	other, err := recipe.Load(filepath.Join(dir, "other.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []commit.Compression{commit.Gzip, commit.Zstd} {
		for _, learn := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/learn=%t", c.Codec, learn), func(t *testing.T) {
				root := t.TempDir()
				opts := func(o *Options) { o.Epoch = &epoch; o.Compression = c }
				if !learn {
					if _, _, _, _, err := buildIn(t, root, other, opts); err != nil {
						t.Fatal(err)
					}
				}
				res, _, _, events, err := buildIn(t, root, r, opts)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range events {
					if e.Kind == EventDone && e.Layer != nil && (e.Layer.DiffID == "") != learn {
						t.Errorf("step %s done with diffID %q; the diffIDs should be learned: %t", e.Pos, e.Layer.DiffID, learn)
					}
				}
				want := sequential[c.Codec]
				if res.Digest != want.image {
					t.Errorf("image %s, the sequential path made %s", res.Digest, want.image)
				}
				ls, err := res.Image.Layers()
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, l := range ls {
					d, _ := l.Digest()
					got = append(got, d.String())
				}
				if d := cmp.Diff(want.layers, got); d != "" {
					t.Errorf("layer digests (-sequential +background):\n%s", d)
				}
				for _, s := range res.Steps {
					if s.Layer == nil {
						continue
					}
					if !slices.Contains(got, s.Layer.Digest) || s.Layer.DiffID == "" || s.Layer.Size <= 0 || s.Timings == nil || s.Timings.Compress <= 0 {
						t.Errorf("step %s: record %+v, timings %+v; want the layer's diffID, digest and size, a compression time", s.Pos, s.Layer, s.Timings)
					}
				}
				assertNoUppers(t, root)
				again, runner, _, _, err := buildIn(t, root, r, opts)
				if err != nil || len(runner.runs) != 0 || again.Digest != want.image {
					t.Errorf("second build: %d runs, image %s, %v; want 0 runs, %s", len(runner.runs), again.Digest, err, want.image)
				}
				nocache, runner, _, _, err := buildIn(t, root, r, opts, func(o *Options) { o.NoCache = true })
				if err != nil || len(runner.runs) == 0 || nocache.Digest != want.image {
					t.Errorf("--no-cache build: %d runs, image %s, %v; want runs, %s", len(runner.runs), nocache.Digest, err, want.image)
				}
				assertNoUppers(t, root)
			})
		}
	}
}

// assertNoUppers checks that the store under root holds no temp dir: no
// upper dir left behind, trimmed or not.
func assertNoUppers(t *testing.T, root string) {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(root, "layers", "tmp"))
	if len(ents) > 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("the store holds temp dirs %v", names)
	}
}

// TestFailureKeepsEarlierSteps: when a step fails, the layers of the steps
// before it, still being compressed, are finished and recorded: the next
// build finds them in the cache.
func TestFailureKeepsEarlierSteps(t *testing.T) {
	dir := t.TempDir()
	yaml := "from: scratch\nsteps:\n  - run: write /big.txt big\n  - run: fail 3 boom\n"
	if err := os.WriteFile(filepath.Join(dir, "strata.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := recipe.Load(filepath.Join(dir, "strata.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if _, _, _, _, err := buildIn(t, root, r); err == nil {
		t.Fatal("the failing build succeeded")
	}
	_, runner, _, _, err := buildIn(t, root, r)
	if err == nil {
		t.Fatal("the failing build succeeded")
	}
	if len(runner.runs) != 1 {
		t.Errorf("the second build ran %d steps, want only the failing one", len(runner.runs))
	}
}
