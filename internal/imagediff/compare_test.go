package imagediff

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func fields(fs ...string) []FieldChange {
	var out []FieldChange
	for i := 0; i+3 <= len(fs); i += 3 {
		c := FieldChange{Path: fs[i]}
		if fs[i+1] != "" {
			c.A = json.RawMessage(fs[i+1])
		}
		if fs[i+2] != "" {
			c.B = json.RawMessage(fs[i+2])
		}
		out = append(out, c)
	}
	return out
}

// TestDiffFields: manifest and config fields that differ are listed, the
// layers that are the same are not read.
func TestDiffFields(t *testing.T) {
	var reads atomic.Int32
	layer := layerOf(t, tarOf(t, base()...), &reads)
	a := imageOf(t, func(c *v1.ConfigFile) {
		c.Config.Labels = map[string]string{"org.opencontainers.image.title": "demo", "keep": "1"}
		c.Config.ExposedPorts = map[string]struct{}{"80/tcp": {}}
	}, layer)
	b := imageOf(t, func(c *v1.ConfigFile) {
		c.Created = v1.Time{Time: time.Date(2026, 12, 1, 9, 12, 44, 0, time.UTC)}
		c.Author = "someone"
		c.Variant = "v2"
		c.Config.Env = append(c.Config.Env, "LANG=C.UTF-8")
		c.Config.Entrypoint = []string{"/app"}
		c.Config.Labels = map[string]string{"org.opencontainers.image.title": "demo2", "keep": "1"}
		c.Config.ExposedPorts = map[string]struct{}{"80/tcp": {}, "8080/tcp": {}}
		c.Config.StopSignal = "SIGTERM"
		c.History[0].CreatedBy = `strata strata.yaml:3 run: make && make install`
		c.History[0].EmptyLayer = true
	}, layer)
	b = mutate.Annotations(b, map[string]string{"org.opencontainers.image.source": "https://example.invalid"}).(v1.Image)

	r := compare(t, a, b)
	want := fields(
		"manifest.annotations", "", `{"org.opencontainers.image.source":"https://example.invalid"}`,
		"author", "", `"someone"`,
		"config.Entrypoint", "", `["/app"]`,
		"config.Env", `["PATH=/usr/bin:/bin"]`, `["PATH=/usr/bin:/bin","LANG=C.UTF-8"]`,
		`config.ExposedPorts["8080/tcp"]`, "", `{}`,
		`config.Labels["org.opencontainers.image.title"]`, `"demo"`, `"demo2"`,
		"config.StopSignal", "", `"SIGTERM"`,
		"created", `"2024-01-01T00:00:00Z"`, `"2026-12-01T09:12:44Z"`,
		"history[0].created_by", `"step 1"`, `"strata strata.yaml:3 run: make && make install"`,
		"history[0].empty_layer", "", `true`,
		"variant", "", `"v2"`,
	)
	if diff := cmp.Diff(want, r.Fields); diff != "" {
		t.Errorf("Fields (-want +got):\n%s", diff)
	}
	if r.Identical || len(r.Layers) != 1 || r.Layers[0].Status != LayerSame {
		t.Errorf("Identical = %v, Layers = %+v; want not identical, one same layer", r.Identical, r.Layers)
	}
	if n := reads.Load(); n != 0 {
		t.Errorf("a layer with the same diffID was read %d times, want 0", n)
	}
}

// TestDiffOnlyDifferingLayersRead: each differing layer is read once per
// side; equal ones never; extra layers are listed, not read.
func TestDiffOnlyDifferingLayersRead(t *testing.T) {
	var same, changedA, changedB, extra atomic.Int32
	bottom := layerOf(t, tarOf(t, base()...), &same)
	la := layerOf(t, tarOf(t, file("app", "1")), &changedA)
	lb := layerOf(t, tarOf(t, file("app", "2")), &changedB)
	top := layerOf(t, tarOf(t, file("extra", "x")), &extra)
	a := imageOf(t, nil, bottom, la)
	b := imageOf(t, nil, bottom, lb, top)

	r := compare(t, a, b)
	var statuses []string
	for _, l := range r.Layers {
		statuses = append(statuses, l.Status)
	}
	if diff := cmp.Diff([]string{LayerSame, LayerChanged, LayerAdded}, statuses); diff != "" {
		t.Errorf("layer statuses (-want +got):\n%s", diff)
	}
	if got := r.Layers[1].Changes; len(got) != 1 || got[0].Path != "/app" || got[0].Attrs[0].Attr != "content" {
		t.Errorf("layer 1 changes = %+v, want /app content", got)
	}
	for name, n := range map[string]int32{"same": same.Load(), "extra": extra.Load()} {
		if n != 0 {
			t.Errorf("the %s layer was read %d times, want 0", name, n)
		}
	}
	for name, n := range map[string]int32{"A's layer 1": changedA.Load(), "B's layer 1": changedB.Load()} {
		if n != 1 {
			t.Errorf("%s was read %d times, want 1", name, n)
		}
	}
	if want := fields("manifest.layers", "2", "3"); !hasField(r.Fields, want[0]) {
		t.Errorf("Fields = %s, want the layer count 2 → 3", r.Fields)
	}
	// Swapped, the extra layer is removed.
	r = compare(t, b, a)
	if l := r.Layers[2]; l.Status != LayerRemoved || l.B != nil || l.A == nil {
		t.Errorf("layer 2 = %+v, want removed", l)
	}
}

func hasField(fs []FieldChange, want FieldChange) bool {
	for _, f := range fs {
		if cmp.Equal(f, want) {
			return true
		}
	}
	return false
}

func TestDiffIdentical(t *testing.T) {
	var reads atomic.Int32
	mk := func() v1.Image { return imageOf(t, nil, layerOf(t, tarOf(t, base()...), &reads)) }
	r := compare(t, mk(), mk())
	if !r.Identical || len(r.Fields) != 0 || r.A.Digest != r.B.Digest || r.A.Digest == "" {
		t.Errorf("Identical = %v, Fields = %v, digests %s %s; want identical", r.Identical, r.Fields, r.A.Digest, r.B.Digest)
	}
	if n := reads.Load(); n != 0 {
		t.Errorf("layers of identical images were read %d times, want 0", n)
	}
}

// TestDiffNoManifest: a side without a manifest (docker-archive) is compared
// by config and layer contents, without asking for its manifest.
func TestDiffNoManifest(t *testing.T) {
	var reads atomic.Int32
	img := imageOf(t, nil, layerOf(t, tarOf(t, base()...), &reads))
	r, err := Compare(t.Context(), Image{Ref: "a", Image: img}, Image{Ref: "b", Image: noManifestImage{img, t}, NoManifest: true})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Identical || r.ManifestCompared || r.B.Digest != "" || r.B.ConfigDigest != r.A.ConfigDigest {
		t.Errorf("Result = %+v; want identical, manifests not compared", r)
	}
	if r.Layers[0].B.Digest != "" || r.Layers[0].B.DiffID == "" {
		t.Errorf("layer 0 of B = %+v, want a diffID and no blob digest", r.Layers[0].B)
	}
	if n := reads.Load(); n != 0 {
		t.Errorf("layers were read %d times, want 0", n)
	}
}

// TestDiffEncodingOnlyFields: the same fields in other bytes are a difference,
// said to be one of encoding.
func TestDiffEncodingOnlyFields(t *testing.T) {
	img := imageOf(t, nil, layerOf(t, tarOf(t, base()...), nil))
	for _, tt := range []struct {
		name             string
		config, manifest bool
		path, note       string
	}{
		{"config", true, false, "manifest.config.digest", noteConfigEncoding},
		{"manifest", false, true, "manifest.digest", noteManifestEncoding},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := compare(t, img, reencode(t, img, tt.config, tt.manifest))
			if r.Identical || len(r.Fields) != 1 || r.Fields[0].Path != tt.path || r.Fields[0].Note != tt.note {
				t.Errorf("Identical = %v, Fields = %s; want one field %s noting %q", r.Identical, r.Fields, tt.path, tt.note)
			}
		})
	}
}

// lyingLayer claims a diffID its content does not have.
type lyingLayer struct{ v1.Layer }

func (lyingLayer) DiffID() (v1.Hash, error) {
	return v1.NewHash("sha256:" + strings.Repeat("0", 64))
}

func TestDiffCorruptLayer(t *testing.T) {
	a := imageOf(t, nil, layerOf(t, tarOf(t, file("x", "1")), nil))
	b := imageOf(t, nil, lyingLayer{layerOf(t, tarOf(t, file("x", "2")), nil)})
	_, err := Compare(t.Context(), Image{Ref: "a", Image: a}, Image{Ref: "b", Image: b})
	if err == nil || !strings.Contains(err.Error(), "the image is corrupt") || !strings.Contains(err.Error(), "layer 0") {
		t.Errorf("Compare = %v, want an error naming layer 0 of b as corrupt", err)
	}
}

// TestDiffSameLayersNotReadFromLayout: in an OCI layout, the blob of a layer
// both images share is never opened — it may as well be missing.
func TestDiffSameLayersNotReadFromLayout(t *testing.T) {
	shared := layerOf(t, tarOf(t, base()...), nil)
	a := imageOf(t, nil, shared, layerOf(t, tarOf(t, file("app", "1")), nil))
	b := imageOf(t, nil, shared, layerOf(t, tarOf(t, file("app", "2")), nil))
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range []v1.Image{a, b} {
		if err := p.AppendImage(img); err != nil {
			t.Fatal(err)
		}
	}
	digest, err := shared.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "blobs", digest.Algorithm, digest.Hex)); err != nil {
		t.Fatal(err)
	}
	fromLayout := func(img v1.Image) v1.Image {
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out, err := p.Image(d)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	r := compare(t, fromLayout(a), fromLayout(b))
	if want := []string{LayerSame, LayerChanged}; len(r.Layers) != 2 || r.Layers[0].Status != want[0] || r.Layers[1].Status != want[1] {
		t.Errorf("Layers = %+v, want %v", r.Layers, want)
	}
	if c := r.Layers[1].Changes; len(c) != 1 || c[0].Path != "/app" {
		t.Errorf("layer 1 changes = %+v, want /app", c)
	}
}

// TestDiffCompressions: gzip, zstd and uncompressed layers are read; the same
// content compressed differently is the same layer in another blob.
func TestDiffCompressions(t *testing.T) {
	content := func(body string) []byte { return tarOf(t, file("app", body)) }
	zstdLayer := func(data []byte) v1.Layer {
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
			tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	for _, tt := range []struct {
		name  string
		layer func([]byte) v1.Layer
	}{
		{"gzip", func(b []byte) v1.Layer { return layerOf(t, b, nil) }},
		{"zstd", zstdLayer},
		{"none", func(b []byte) v1.Layer { return static.NewLayer(b, types.OCIUncompressedLayer) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := imageOf(t, nil, layerOf(t, content("1"), nil))
			r := compare(t, a, imageOf(t, nil, tt.layer(content("2"))))
			if c := r.Layers[0].Changes; len(c) != 1 || c[0].Path != "/app" || c[0].Attrs[0].Attr != "content" {
				t.Errorf("changes = %+v, want /app's content", c)
			}
		})
	}
	r := compare(t, imageOf(t, nil, layerOf(t, content("1"), nil)), imageOf(t, nil, zstdLayer(content("1"))))
	l := r.Layers[0]
	if r.Identical || l.Status != LayerSame || l.A.Digest == l.B.Digest {
		t.Errorf("Identical = %v, layer 0 = %+v; want a same layer in another blob", r.Identical, l)
	}
	if want := fields("manifest.layers[0].mediaType", `"`+string(types.OCILayer)+`"`, `"`+string(types.OCILayerZStd)+`"`); !cmp.Equal(want, r.Fields) {
		t.Errorf("Fields = %s, want %s", r.Fields, want)
	}
	var buf bytes.Buffer
	if err := r.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	if want := "layer 0: same content, blob " + short(l.A.Digest) + " → " + short(l.B.Digest) + " (compressed differently)\n"; !strings.HasSuffix(buf.String(), want) {
		t.Errorf("WriteText = %q, want it to end with %q", buf.String(), want)
	}
}

// claimingLayer is a layer whose config entry claims diffID, whatever its
// content.
type claimingLayer struct {
	v1.Layer
	diffID v1.Hash
}

func (l claimingLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }

// gzipLayer makes a gzip layer of a tar at a compression level; its reads
// are counted in reads.
func gzipLayer(t testing.TB, tarData []byte, level int, reads *atomic.Int32) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarData)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(level))
	if err != nil {
		t.Fatal(err)
	}
	return countingLayer{Layer: l, reads: reads}
}

// TestDiffSameDiffIDOtherBlobs: two blobs whose configs claim one diffID
// are both read before the layer is called the same: the same tar
// compressed at two gzip levels is "same"; a blob holding other files than
// the diffID it claims is an error naming the image and the layer.
func TestDiffSameDiffIDOtherBlobs(t *testing.T) {
	content := tarOf(t, base()...)
	var readsA, readsB atomic.Int32
	a := imageOf(t, nil, gzipLayer(t, content, gzip.DefaultCompression, &readsA))
	b := imageOf(t, nil, gzipLayer(t, content, gzip.BestSpeed, &readsB))
	r := compare(t, a, b)
	l := r.Layers[0]
	if l.Status != LayerSame || l.A.Digest == l.B.Digest || r.Identical {
		t.Errorf("Identical = %v, layer 0 = %+v; want the same layer in another blob", r.Identical, l)
	}
	if na, nb := readsA.Load(), readsB.Load(); na != 1 || nb != 1 {
		t.Errorf("the layers were read %d and %d times, want once each", na, nb)
	}

	cfgA, err := a.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	forged := claimingLayer{layerOf(t, tarOf(t, file("etc/app.conf", "EVIL\n")), nil), cfgA.RootFS.DiffIDs[0]}
	_, err = Compare(t.Context(), Image{Ref: "a", Image: a}, Image{Ref: "forged", Image: imageOf(t, nil, forged)})
	if err == nil || !strings.Contains(err.Error(), "layer 0 ("+cfgA.RootFS.DiffIDs[0].String()+") of forged") ||
		!strings.Contains(err.Error(), "the image is corrupt or forged") {
		t.Errorf("Compare with a forged diffID = %v, want an error naming layer 0 of forged", err)
	}
}

// TestDiffSameBlobOtherSize: one blob given two sizes by the manifests is a
// change of the manifests, not an "encoding only" one.
func TestDiffSameBlobOtherSize(t *testing.T) {
	img := imageOf(t, nil, layerOf(t, tarOf(t, base()...), nil))
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	m = m.DeepCopy()
	m.Layers[0].Size += 1000
	rawManifest, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := partial.CompressedToImage(rawImage{manifest: rawManifest, config: rawCfg, from: img})
	if err != nil {
		t.Fatal(err)
	}
	r := compare(t, img, wrong)
	size := strconv.FormatInt(m.Layers[0].Size, 10)
	want := fields("manifest.layers[0].size", strconv.FormatInt(m.Layers[0].Size-1000, 10), size)
	if diff := cmp.Diff(want, r.Fields); diff != "" || r.Identical {
		t.Errorf("Identical = %v, Fields (-want +got):\n%s", r.Identical, diff)
	}
}
