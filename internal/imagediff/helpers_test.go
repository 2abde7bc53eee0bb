package imagediff

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// ent is one tar entry of a test layer.
type ent struct {
	hdr  tar.Header
	body string
}

func file(name, body string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: epoch}, body: body}
}

func dir(name string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: epoch}}
}

func symlink(name, target string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: epoch}}
}

// with returns e changed by f.
func (e ent) with(f func(h *tar.Header)) ent {
	f(&e.hdr)
	return e
}

// tarOf writes entries as a tar, in the order given, in PAX format.
func tarOf(t testing.TB, entries ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if h.Format == tar.FormatUnknown {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("writing %s: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// countingLayer counts the reads of a layer's content.
type countingLayer struct {
	v1.Layer
	reads *atomic.Int32
}

func (l countingLayer) Compressed() (io.ReadCloser, error) {
	l.reads.Add(1)
	return l.Layer.Compressed()
}

func (l countingLayer) Uncompressed() (io.ReadCloser, error) {
	l.reads.Add(1)
	return l.Layer.Uncompressed()
}

// layerOf makes a gzip layer of a tar; its reads are counted in reads
// (nil: not counted).
func layerOf(t testing.TB, tarData []byte, reads *atomic.Int32) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarData)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	if reads == nil {
		return l
	}
	return countingLayer{Layer: l, reads: reads}
}

// imageOf makes an OCI image of layers (bottom first), with one history
// entry per layer and a fixed created time; edit changes its config.
func imageOf(t testing.TB, edit func(*v1.ConfigFile), layers ...v1.Layer) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for i, l := range layers {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{Layer: l,
			History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "step " + string(rune('1'+i))}})
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.OS, cfg.Created = "amd64", "linux", v1.Time{Time: epoch}
	cfg.RootFS.Type = "layers"
	cfg.Config.Env = []string{"PATH=/usr/bin:/bin"}
	if edit != nil {
		edit(cfg)
	}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	return img
}

// compare runs Compare on two in-memory images.
func compare(t testing.TB, a, b v1.Image) *Result {
	t.Helper()
	r, err := Compare(t.Context(), Image{Ref: "a", Image: a}, Image{Ref: "b", Image: b})
	if err != nil {
		t.Fatalf("Compare: %v", err)
	}
	return r
}

// rawImage is an image given by its raw manifest and config, its layers
// taken from another image: a way to encode the same fields differently.
type rawImage struct {
	manifest, config []byte
	from             v1.Image
}

func (r rawImage) RawManifest() ([]byte, error)   { return r.manifest, nil }
func (r rawImage) RawConfigFile() ([]byte, error) { return r.config, nil }
func (r rawImage) MediaType() (types.MediaType, error) {
	return types.OCIManifestSchema1, nil
}
func (r rawImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	return r.from.LayerByDigest(h)
}

// reencode returns img with its config and/or manifest JSON indented:
// the same fields, other bytes, other digests.
func reencode(t testing.TB, img v1.Image, config, manifest bool) v1.Image {
	t.Helper()
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if config {
		rawCfg = indent(t, rawCfg)
		m = m.DeepCopy()
		m.Config.Digest, m.Config.Size, err = v1.SHA256(bytes.NewReader(rawCfg))
		if err != nil {
			t.Fatal(err)
		}
	}
	rawManifest, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if manifest {
		rawManifest = indent(t, rawManifest)
	}
	out, err := partial.CompressedToImage(rawImage{manifest: rawManifest, config: rawCfg, from: img})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func indent(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, data, "", "\t"); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// noManifestImage fails the test if its manifest is asked for: what
// Compare must not do to a docker-archive.
type noManifestImage struct {
	v1.Image
	t testing.TB
}

func (i noManifestImage) Manifest() (*v1.Manifest, error) {
	i.t.Error("Manifest() called on an image without one")
	return i.Image.Manifest()
}

func (i noManifestImage) RawManifest() ([]byte, error) {
	i.t.Error("RawManifest() called on an image without one")
	return i.Image.RawManifest()
}

func (i noManifestImage) Digest() (v1.Hash, error) {
	i.t.Error("Digest() called on an image without a manifest")
	return i.Image.Digest()
}
