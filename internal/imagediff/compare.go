package imagediff

import (
	"bytes"
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Image is one side of a comparison.
type Image struct {
	// Ref names the image as the user gave it; it is only shown.
	Ref string
	// Image is the image. Its layers are read only where they differ.
	Image v1.Image
	// NoManifest says the image comes from a source without a registry
	// manifest: a docker-archive (`docker save`), for which ggcr would
	// make one up by compressing every layer. Its manifest and layer
	// blobs are then neither computed nor compared.
	NoManifest bool
}

// Notes of fields that differ in encoding only.
const (
	noteConfigEncoding   = "every config field is the same; the config's JSON encoding differs"
	noteManifestEncoding = "every manifest field is the same; the manifest's JSON encoding differs"
)

// side is what is known of one image before any layer is read.
type side struct {
	Side
	noManifest bool
	manifest   any // decoded manifest; nil without one
	config     any // decoded config file
	layers     []layerRef
}

type layerRef struct {
	blob  LayerBlob
	layer v1.Layer
}

// Compare says what differs between images a and b. It reads the
// manifests and configs, then only the layers whose diffIDs or blobs
// differ, each once, as uncompressed tar streams.
func Compare(ctx context.Context, a, b Image) (*Result, error) {
	sa, err := load(a)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", a.Ref, err)
	}
	sb, err := load(b)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", b.Ref, err)
	}
	r := &Result{
		A: sa.Side, B: sb.Side,
		ManifestCompared: !a.NoManifest && !b.NoManifest,
		Fields:           []FieldChange{},
	}
	if r.ManifestCompared && sa.Digest == sb.Digest {
		// One manifest: the same diffIDs, so no layer is read.
		r.Identical = true
		r.Layers, err = compareLayers(ctx, sa, sb)
		return r, err
	}
	if r.ManifestCompared {
		r.Fields = append(r.Fields, manifestChanges(sa.manifest, sb.manifest)...)
	}
	config := configChanges(sa.config, sb.config)
	r.Fields = append(r.Fields, config...)
	if len(config) == 0 && sa.ConfigDigest != sb.ConfigDigest && sameDiffIDs(sa.layers, sb.layers) {
		r.Fields = append(r.Fields, FieldChange{Path: "manifest.config.digest",
			A: marshal(sa.ConfigDigest), B: marshal(sb.ConfigDigest), Note: noteConfigEncoding})
	}
	if r.Layers, err = compareLayers(ctx, sa, sb); err != nil {
		return nil, err
	}
	r.Identical = len(r.Fields) == 0 && allSame(r.Layers, r.ManifestCompared)
	if r.Identical && r.ManifestCompared {
		// The digests differ, so something does: the encoding.
		r.Identical = false
		r.Fields = append(r.Fields, FieldChange{Path: "manifest.digest",
			A: marshal(sa.Digest), B: marshal(sb.Digest), Note: noteManifestEncoding})
	}
	return r, nil
}

// load reads what Compare needs of an image before any layer.
func load(img Image) (*side, error) {
	s := &side{Side: Side{Ref: img.Ref}, noManifest: img.NoManifest}
	cfgName, err := img.Image.ConfigName()
	if err != nil {
		return nil, fmt.Errorf("reading the config digest: %w", err)
	}
	s.ConfigDigest = cfgName.String()
	rawCfg, err := img.Image.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the config: %w", err)
	}
	if s.config, err = decodeJSON(rawCfg); err != nil {
		return nil, fmt.Errorf("decoding the config: %w", err)
	}
	var m *v1.Manifest
	if !img.NoManifest {
		if m, err = readManifest(img.Image, s); err != nil {
			return nil, err
		}
	}
	// The diffIDs come from the config, by position: asking a layer of an
	// OCI layout for its DiffID decompresses the whole blob.
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, fmt.Errorf("decoding the config: %w", err)
	}
	diffIDs := cfg.RootFS.DiffIDs
	layers, err := img.Image.Layers()
	if err != nil {
		return nil, fmt.Errorf("listing the layers: %w", err)
	}
	if len(diffIDs) != len(layers) || (m != nil && len(m.Layers) != len(layers)) {
		return nil, fmt.Errorf("the config lists %d diffIDs for %d layers", len(diffIDs), len(layers))
	}
	for i, l := range layers {
		ref := layerRef{blob: LayerBlob{DiffID: diffIDs[i].String()}, layer: l}
		if m != nil {
			d := m.Layers[i]
			ref.blob.Digest, ref.blob.MediaType, ref.blob.Size = d.Digest.String(), string(d.MediaType), d.Size
		}
		s.layers = append(s.layers, ref)
	}
	return s, nil
}

func readManifest(img v1.Image, s *side) (*v1.Manifest, error) {
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("reading the manifest digest: %w", err)
	}
	s.Digest = digest.String()
	raw, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("reading the manifest: %w", err)
	}
	if s.manifest, err = decodeJSON(raw); err != nil {
		return nil, fmt.Errorf("decoding the manifest: %w", err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("decoding the manifest: %w", err)
	}
	return m, nil
}

// manifestChanges compares two manifests, leaving out what the rest of
// the comparison covers: the config's and the layers' digests, and their
// sizes where the digests differ (one blob given two sizes is a change).
// A different layer count is one change, "manifest.layers".
func manifestChanges(a, b any) []FieldChange {
	ma, okA := a.(map[string]any)
	mb, okB := b.(map[string]any)
	if !okA || !okB {
		d := fieldDiff{}
		d.value("manifest", a, b, true, true)
		return d.changes
	}
	la, _ := ma["layers"].([]any)
	lb, _ := mb["layers"].([]any)
	n := min(len(la), len(lb))
	d := fieldDiff{}
	d.value("manifest", stripManifest(ma, mb, n), stripManifest(mb, ma, n), true, true)
	if len(la) != len(lb) {
		d.changes = append(d.changes, FieldChange{Path: "manifest.layers",
			A: marshal(len(la)), B: marshal(len(lb))})
	}
	return d.changes
}

// stripManifest copies m, compared with other, with only its first n
// layers, without the digests of its config and layers, and without their
// sizes where other names another blob.
func stripManifest(m, other map[string]any, n int) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	if c, ok := m["config"].(map[string]any); ok {
		out["config"] = withoutBlob(c, other["config"])
	}
	if ls, ok := m["layers"].([]any); ok {
		others, _ := other["layers"].([]any)
		stripped := make([]any, n)
		for i := range n {
			stripped[i] = ls[i]
			if d, ok := ls[i].(map[string]any); ok {
				stripped[i] = withoutBlob(d, others[i])
			}
		}
		out["layers"] = stripped
	}
	return out
}

// withoutBlob copies the descriptor d without its digest, and without its
// size unless other is a descriptor of the same blob.
func withoutBlob(d map[string]any, other any) map[string]any {
	o, _ := other.(map[string]any)
	digest, ok := d["digest"].(string)
	otherDigest, _ := o["digest"].(string)
	sameBlob := ok && digest == otherDigest
	out := make(map[string]any, len(d))
	for k, v := range d {
		if k != "digest" && (k != "size" || sameBlob) {
			out[k] = v
		}
	}
	return out
}

// configChanges compares two config files; rootfs.diff_ids are left to
// the layer comparison.
func configChanges(a, b any) []FieldChange {
	d := fieldDiff{skip: map[string]bool{"rootfs.diff_ids": true}}
	d.value("", a, b, true, true)
	for i := range d.changes {
		if d.changes[i].Path == "" {
			d.changes[i].Path = "config"
		}
	}
	return d.changes
}

func sameDiffIDs(a, b []layerRef) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].blob.DiffID != b[i].blob.DiffID {
			return false
		}
	}
	return true
}

// allSame reports whether every layer is the same, with the same blob
// where blobs are compared.
func allSame(layers []Layer, blobs bool) bool {
	for _, l := range layers {
		if l.Status != LayerSame || (blobs && l.A.Digest != l.B.Digest) {
			return false
		}
	}
	return true
}
