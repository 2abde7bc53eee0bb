package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stratabuild/strata/commit"
)

// Encodings of layers: compression is a choice of output, so a cached
// layer whose blob is compressed otherwise than a build asks is
// re-encoded for its output (build/output.go), never run again. The
// cache entry keeps its layer as first committed; the re-encoded blob
// goes to the blob directory and its record to the index's "encodings"
// directory, named by the diffID and the compression, so that the next
// build finds it instead of compressing again. Prune keeps the encodings
// of the layers of the entries it keeps.
const encodingsDir = "encodings"

func (l *Local) encodingPath(diffID string, c commit.Compression) string {
	n := c.Normalized()
	name := fmt.Sprintf("%s-%s-%d.json", strings.TrimPrefix(diffID, "sha256:"), n.Codec, n.Level)
	return filepath.Join(l.dir, encodingsDir, name)
}

// Encoded returns the layer diffID compressed as c, and its record, if an
// earlier build re-encoded it and its blob is still there; nil otherwise.
func (l *Local) Encoded(diffID string, c commit.Compression) (*commit.Layer, *Layer) {
	data, err := os.ReadFile(l.encodingPath(diffID, c))
	if err != nil {
		return nil, nil
	}
	var rec Layer
	if json.Unmarshal(data, &rec) != nil || rec.DiffID != diffID {
		return nil, nil
	}
	if got, ok := rec.Compression(); !ok || got != c.Normalized() {
		return nil, nil
	}
	layer, err := l.open(&rec)
	if err != nil {
		return nil, nil // pruned meanwhile
	}
	return layer, &rec
}

// PutEncoded records rec, a layer re-encoded into the blob directory,
// atomically. Its compression must be known (see Layer.Compression).
func (l *Local) PutEncoded(rec *Layer) error {
	c, ok := rec.Compression()
	if !ok {
		return fmt.Errorf("recording layer %s: its compression is not known", rec.DiffID)
	}
	dir := filepath.Join(l.dir, encodingsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("recording a re-encoded layer: %w", err)
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(dir, l.encodingPath(rec.DiffID, c), data, 0o600); err != nil {
		return fmt.Errorf("recording a re-encoded layer: %w", err)
	}
	return nil
}

// pruneEncodings removes the records of encodings of layers not in keep
// (diffIDs) and adds the blobs of those it keeps to blobs (digest hex).
func (l *Local) pruneEncodings(keep, blobs map[string]bool) error {
	dir := filepath.Join(l.dir, encodingsDir)
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil // none yet
	}
	for _, de := range des {
		path := filepath.Join(dir, de.Name())
		var rec Layer
		data, err := os.ReadFile(path)
		if err == nil && json.Unmarshal(data, &rec) == nil && keep[rec.DiffID] {
			blobs[strings.TrimPrefix(rec.Digest, "sha256:")] = true
			continue
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("removing a re-encoded layer's record: %w", err)
		}
	}
	return nil
}

// Reencode returns layer, recorded as rec, compressed as c: found among
// the encodings kept under the state root, or made now (made) and kept
// there. Its diffID is unchanged.
func (l *Local) Reencode(ctx context.Context, layer v1.Layer, rec *Layer, c commit.Compression) (out v1.Layer, made bool, err error) {
	if found, _ := l.Encoded(rec.DiffID, c); found != nil {
		return found, false, nil
	}
	enc, err := commit.Reencode(ctx, layer, l.blobs, c)
	if err != nil {
		return nil, false, err
	}
	r, err := LayerOf(enc, rec.Added, rec.Modified, rec.Deleted)
	if err != nil {
		return nil, false, err
	}
	if err := l.PutEncoded(r); err != nil {
		return nil, false, err
	}
	return enc, true, nil
}
