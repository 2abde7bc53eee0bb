package commit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compression names how a layer blob is compressed.
type Compression string

const (
	// Gzip is the default: every registry and runtime reads it.
	Gzip Compression = "gzip"
	// Zstd is smaller and faster to decompress; needs containerd ≥ 1.5 or
	// docker ≥ 23 on the consuming side.
	Zstd Compression = "zstd"
)

// gzipLevel trades a little size for speed: klauspost level 1 compresses a
// 130 MiB tar in 0.64 s on 2 cores where stdlib gzip-1 takes 1.07 s.
const gzipLevel = gzip.BestSpeed

// mediaType returns the OCI layer media type for c.
func (c Compression) mediaType() (types.MediaType, error) {
	switch c {
	case Gzip, "":
		return types.OCILayer, nil
	case Zstd:
		return types.OCILayerZStd, nil
	}
	return "", fmt.Errorf("unknown compression %q (want gzip or zstd)", string(c))
}

// Layer is a committed layer blob: a compressed tar in a file whose digest,
// diffID, size and media type were computed when it was written. It
// implements v1.Layer without ever re-reading the file to learn them.
type Layer struct {
	path      string
	diffID    v1.Hash
	digest    v1.Hash
	size      int64
	mediaType types.MediaType
}

var _ v1.Layer = (*Layer)(nil)

// WriteLayer reads the uncompressed layer tar once, compresses it with c
// and stores the blob in dir, named by its digest's hex. The diffID (sha256
// of the tar) and the digest (sha256 of the blob) are computed in the same
// pass. On error nothing is left in dir.
func WriteLayer(ctx context.Context, tar io.Reader, dir string, c Compression) (*Layer, error) {
	mt, err := c.mediaType()
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, ".layer-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("creating layer blob: %w", err)
	}
	l, err := writeBlob(ctx, tar, tmp, c)
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing layer blob: %w", cerr)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return nil, err
	}
	l.mediaType = mt
	l.path = filepath.Join(dir, l.digest.Hex)
	if err := os.Rename(tmp.Name(), l.path); err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("naming layer blob: %w", err)
	}
	return l, nil
}

// writeBlob streams tar through the compressor into f, hashing both sides.
func writeBlob(ctx context.Context, tar io.Reader, f *os.File, c Compression) (*Layer, error) {
	blobHash := sha256.New()
	blob := &countWriter{w: io.MultiWriter(f, blobHash)}
	var zw io.WriteCloser
	switch c {
	case Zstd:
		enc, err := zstd.NewWriter(blob)
		if err != nil {
			return nil, fmt.Errorf("starting zstd: %w", err)
		}
		zw = enc
	default:
		gw, err := gzip.NewWriterLevel(blob, gzipLevel)
		if err != nil {
			return nil, fmt.Errorf("starting gzip: %w", err)
		}
		zw = gw
	}
	tarHash := sha256.New()
	if _, err := io.Copy(io.MultiWriter(zw, tarHash), ctxReader{ctx, tar}); err != nil {
		zw.Close()
		return nil, fmt.Errorf("compressing layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing layer: %w", err)
	}
	if blob.err != nil {
		return nil, fmt.Errorf("writing layer blob: %w", blob.err)
	}
	return &Layer{
		diffID: sha256Hash(tarHash),
		digest: sha256Hash(blobHash),
		size:   blob.n,
	}, nil
}

// OpenLayer re-opens a blob committed earlier (by WriteLayer) from what was
// recorded about it, for caches. Only the size is checked against the file.
func OpenLayer(path string, diffID, digest v1.Hash, size int64, mt types.MediaType) (*Layer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("opening layer blob: %w", err)
	}
	if fi.Size() != size {
		return nil, fmt.Errorf("layer blob %s has %d bytes, recorded %d", path, fi.Size(), size)
	}
	return &Layer{path: path, diffID: diffID, digest: digest, size: size, mediaType: mt}, nil
}

// Path is the blob file.
func (l *Layer) Path() string { return l.path }

// Digest is the sha256 of the compressed blob.
func (l *Layer) Digest() (v1.Hash, error) { return l.digest, nil }

// DiffID is the sha256 of the uncompressed tar.
func (l *Layer) DiffID() (v1.Hash, error) { return l.diffID, nil }

// Size is the size of the compressed blob.
func (l *Layer) Size() (int64, error) { return l.size, nil }

// MediaType is the OCI layer media type (gzip or zstd).
func (l *Layer) MediaType() (types.MediaType, error) { return l.mediaType, nil }

// Compressed opens the blob.
func (l *Layer) Compressed() (io.ReadCloser, error) {
	return os.Open(l.path)
}

// Uncompressed opens the blob and decompresses it.
func (l *Layer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	r, err := decompress(f, l.mediaType)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("decompressing %s: %w", l.path, err)
	}
	return r, nil
}

// decompress wraps rc in the decompressor mt names; closing the result
// closes rc.
func decompress(rc io.ReadCloser, mt types.MediaType) (io.ReadCloser, error) {
	switch mt {
	case types.OCILayerZStd:
		d, err := zstd.NewReader(rc)
		if err != nil {
			return nil, err
		}
		return &readCloser{Reader: d, close: func() error { d.Close(); return rc.Close() }}, nil
	case types.OCILayer, types.DockerLayer:
		g, err := gzip.NewReader(rc)
		if err != nil {
			return nil, err
		}
		return &readCloser{Reader: g, close: func() error { return errors.Join(g.Close(), rc.Close()) }}, nil
	case types.OCIUncompressedLayer, types.DockerUncompressedLayer:
		return rc, nil
	}
	return nil, fmt.Errorf("unknown layer media type %q", mt)
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r *readCloser) Close() error { return r.close() }

// countWriter counts what it passes on and remembers the first error.
type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

func sha256Hash(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}
