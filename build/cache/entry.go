package cache

import (
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/stratabuild/strata/commit"
)

// Layer is a committed layer blob, and what the step changed in it.
type Layer struct {
	DiffID    string `json:"diff_id"`
	Digest    string `json:"digest"`
	MediaType string `json:"media_type"`
	Size      int64  `json:"size"`
	// Level is the compression level the blob was written with
	// (commit.Compression, normalized); 0 when not known.
	Level    int `json:"level,omitempty"`
	Added    int `json:"added"`
	Modified int `json:"modified"`
	Deleted  int `json:"deleted"`
}

// Compressing says that the layer's blob is still being compressed: the
// record a step reports when it finishes knows its diffID, not yet its
// digest and size.
func (l *Layer) Compressing() bool { return l.Digest == "" && l.Size == 0 }

// openBlob opens the blob at path as the layer rec records (commit.OpenLayer
// checks its size).
func openBlob(path string, rec *Layer) (*commit.Layer, error) {
	diffID, err := v1.NewHash(rec.DiffID)
	if err != nil {
		return nil, err
	}
	dg, err := v1.NewHash(rec.Digest)
	if err != nil {
		return nil, err
	}
	return commit.OpenLayer(path, diffID, dg, rec.Size, types.MediaType(rec.MediaType))
}

// Entry is one cached step result.
type Entry struct {
	Key    string `json:"key"`
	Inputs Inputs `json:"inputs"`
	// Layer is nil when the step changed no file.
	Layer   *Layer    `json:"layer,omitempty"`
	Created time.Time `json:"created"`
	// LastUsed is when a build last hit (or made) the entry.
	LastUsed time.Time `json:"last_used"`
	// KeyVersion is the version of the key's encoding the entry was made
	// with (see keyVersion; "": before v3), to explain a miss.
	KeyVersion string `json:"key_version,omitempty"`
}

// LayerOf records l, a committed layer, with the counts of what its step
// added, modified and deleted.
func LayerOf(l v1.Layer, added, modified, deleted int) (*Layer, error) {
	diffID, err := l.DiffID()
	if err != nil {
		return nil, err
	}
	dg, err := l.Digest()
	if err != nil {
		return nil, err
	}
	size, err := l.Size()
	if err != nil {
		return nil, err
	}
	mt, err := l.MediaType()
	if err != nil {
		return nil, err
	}
	rec := &Layer{DiffID: diffID.String(), Digest: dg.String(), Size: size, MediaType: string(mt),
		Added: added, Modified: modified, Deleted: deleted}
	if c, ok := l.(*commit.Layer); ok {
		rec.Level = c.Compression().Level
	}
	return rec, nil
}

// Compression is how the blob is compressed; ok is false when that is not
// fully known (no level recorded, or not a gzip or zstd blob).
func (l *Layer) Compression() (c commit.Compression, ok bool) {
	switch types.MediaType(l.MediaType) {
	case types.OCILayer, types.DockerLayer:
		c.Codec = commit.CodecGzip
	case types.OCILayerZStd:
		c.Codec = commit.CodecZstd
	default:
		return commit.Compression{}, false
	}
	c.Level = l.Level
	return c, l.Level != 0 && c.Normalized() == c
}
