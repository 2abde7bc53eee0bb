package build

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/recipe"
)

const encodeRecipe = `from: scratch
steps:
  - run: write /a.txt alpha
  - run: write /b.txt beta
image:
  labels: {keep: recipe, over: recipe}
  annotations: {org.example.keep: recipe, org.example.over: recipe}
`

// layerInfo lists each layer's media type and diffID.
func layerInfo(t *testing.T, img v1.Image) (mts []types.MediaType, diffIDs []v1.Hash) {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		mt, _ := l.MediaType()
		d, _ := l.DiffID()
		mts, diffIDs = append(mts, mt), append(diffIDs, d)
	}
	return mts, diffIDs
}

// TestCompressionIsAnOutputChoice: a build with gzip, then with zstd on
// the same root runs no step and outputs zstd layers with the same
// diffIDs; the re-encoding is kept, so a third build does not compress
// again.
func TestCompressionIsAnOutputChoice(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "strata.yaml"), []byte(encodeRecipe), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := recipe.Load(filepath.Join(dir, "strata.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	epoch := time.Unix(1700000000, 0)
	fixed := func(o *Options) { o.Epoch = &epoch }
	gz, runner, _, _, err := buildIn(t, root, r, fixed)
	if err != nil || len(runner.runs) != 2 {
		t.Fatalf("gzip build: %d runs, %v", len(runner.runs), err)
	}
	gzTypes, gzDiffIDs := layerInfo(t, gz.Image)
	if d := cmp.Diff([]types.MediaType{types.OCILayer, types.OCILayer}, gzTypes); d != "" {
		t.Errorf("gzip build layer media types (-want +got):\n%s", d)
	}

	zstd := func(o *Options) { o.Compression = commit.Compression{Codec: commit.CodecZstd, Level: 19} }
	zs, runner, _, events, err := buildIn(t, root, r, fixed, zstd)
	if err != nil {
		t.Fatal(err)
	}
	if len(runner.runs) != 0 {
		t.Errorf("zstd build after a gzip one ran %d steps, want 0", len(runner.runs))
	}
	zsTypes, zsDiffIDs := layerInfo(t, zs.Image)
	if d := cmp.Diff([]types.MediaType{types.OCILayerZStd, types.OCILayerZStd}, zsTypes); d != "" {
		t.Errorf("zstd build layer media types (-want +got):\n%s", d)
	}
	if d := cmp.Diff(gzDiffIDs, zsDiffIDs); d != "" {
		t.Errorf("diffIDs changed with the compression (-gzip +zstd):\n%s", d)
	}
	if n := countInfo(events, "re-encoded the layer"); n != 2 {
		t.Errorf("%d layers re-encoded, want 2:\n%v", n, infos(events))
	}
	// The steps' records (--metadata-file) are of the layers the image
	// holds, re-encoded; the cache keeps the gzip ones (below).
	ls, err := zs.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]bool{}
	for _, l := range ls {
		dg, _ := l.Digest()
		held[dg.String()] = true
	}
	for i, s := range zs.Steps {
		if !s.Cached || s.Layer.MediaType != string(types.OCILayerZStd) || !held[s.Layer.Digest] || s.Layer.DiffID != gzDiffIDs[i].String() {
			t.Errorf("step %s: cached %t, record %+v; want cached, the record of the zstd layer the image holds", s.Pos, s.Cached, s.Layer)
		}
	}

	again, runner, _, events, err := buildIn(t, root, r, fixed, zstd)
	if err != nil {
		t.Fatal(err)
	}
	if n := countInfo(events, "re-encoded the layer"); n != 0 || len(runner.runs) != 0 {
		t.Errorf("third build: %d runs, %d re-encodings; want none", len(runner.runs), n)
	}
	d1, _ := zs.Image.Digest()
	d2, _ := again.Image.Digest()
	if d1 != d2 {
		t.Errorf("the same zstd build gave %s, then %s", d1, d2)
	}

	// And back: the layers as first committed are still the cache's.
	back, _, _, events, err := buildIn(t, root, r, fixed)
	if err != nil {
		t.Fatal(err)
	}
	d3, _ := back.Image.Digest()
	d0, _ := gz.Image.Digest()
	if d3 != d0 || countInfo(events, "re-encoded the layer") != 0 {
		t.Errorf("gzip again: %s (want %s), with %d re-encodings (want 0)", d3, d0, countInfo(events, "re-encoded the layer"))
	}
}

// TestLabelsAndAnnotationsMerged: the options' labels and annotations are
// set over the recipe's.
func TestLabelsAndAnnotationsMerged(t *testing.T) {
	res, _, _, _, err := buildFake(t, encodeRecipe, func(o *Options) {
		o.Labels = map[string]string{"over": "flag", "new": "flag"}
		o.Annotations = map[string]string{"org.example.over": "flag", "org.example.new": "flag"}
	})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := res.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]string{"keep": "recipe", "over": "flag", "new": "flag"}, cf.Config.Labels); d != "" {
		t.Errorf("labels (-want +got):\n%s", d)
	}
	m, err := res.Image.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"org.example.keep": "recipe", "org.example.over": "flag", "org.example.new": "flag"}
	for k, v := range want {
		if m.Annotations[k] != v {
			t.Errorf("manifest annotation %s = %q, want %q (all: %v)", k, m.Annotations[k], v, m.Annotations)
		}
	}
}

func countInfo(events []Event, text string) int {
	n := 0
	for _, e := range events {
		if e.Kind == EventInfo && hasInfo([]Event{e}, text) {
			n++
		}
	}
	return n
}

// TestCompressionSwitchMultiPlatform: in a two-platform build whose
// platforms make the same layer, both images get it re-encoded.
func TestCompressionSwitchMultiPlatform(t *testing.T) {
	dir := t.TempDir()
	recipeText := own("platforms: [linux/amd64, linux/arm64]\nfrom: scratch\nsteps:\n  - file: /a.txt\n    owner: OWNER\n    content: alpha\n")
	if err := os.WriteFile(filepath.Join(dir, "strata.yaml"), []byte(recipeText), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := recipe.Load(filepath.Join(dir, "strata.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if _, _, _, _, err := buildIn(t, root, r); err != nil {
		t.Fatal(err)
	}
	res, _, _, _, err := buildIn(t, root, r, func(o *Options) { o.Compression = commit.Zstd })
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Images) != 2 {
		t.Fatalf("%d images, want 2", len(res.Images))
	}
	for i, img := range res.Images {
		mts, _ := layerInfo(t, img)
		if d := cmp.Diff([]types.MediaType{types.OCILayerZStd}, mts); d != "" {
			t.Errorf("image %d layer media types (-want +got):\n%s", i, d)
		}
	}
}
