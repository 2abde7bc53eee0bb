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
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"

	"github.com/stratabuild/strata/internal/gunzip"
)

// Codec is a layer compression algorithm.
type Codec string

const (
	// CodecGzip is the default: every registry and runtime reads it.
	CodecGzip Codec = "gzip"
	// CodecZstd is smaller and faster to decompress; needs containerd ≥ 1.5
	// or docker ≥ 23 on the consuming side.
	CodecZstd Codec = "zstd"
)

// Compression is how a layer blob is encoded: a codec and its level. It is
// a choice of output, never part of what a step produced: the same tar
// (diffID) may be kept encoded several ways. Level 0 is the codec's
// default; an empty Codec is gzip.
type Compression struct {
	Codec Codec
	Level int
}

// Gzip and Zstd are the codecs at their default levels.
var (
	Gzip = Compression{Codec: CodecGzip}
	Zstd = Compression{Codec: CodecZstd}
)

// The default levels, chosen by measurement (docs/benchmarks.md, "Layer
// compression"): gzip level 5 makes layers 1.6–2.3% larger than docker's
// (the standard library's level 6) where level 1 made them 10–11% larger;
// levels 3 and 4 stay 2.9–6.5% larger, level 6 saves 0.1–0.7% more for 8%
// more CPU. zstd level 3 is zstd's own default.
const (
	DefaultGzipLevel = 5
	DefaultZstdLevel = 3
)

// gzipBlocks bounds how many 1 MiB blocks of a layer are compressed at
// once (each with the previous block's last 32 KiB as its dictionary, so
// the size is that of one stream): the blob is the same bytes whatever the
// number of cores, and memory stays a few MiB on machines with many.
const gzipBlocks = 4

// ParseCompression checks a codec and level as a user gives them: gzip
// takes levels 1–9, zstd 1–22 (the zstd command's scale); 0 is the
// codec's default.
func ParseCompression(codec string, level int) (Compression, error) {
	c := Compression{Codec: Codec(codec), Level: level}
	switch c.Codec {
	case CodecGzip:
		if level < 0 || level > 9 {
			return Compression{}, fmt.Errorf("bad gzip level %d: want 1 (fastest) to 9 (smallest)", level)
		}
	case CodecZstd:
		if level < 0 || level > 22 {
			return Compression{}, fmt.Errorf("bad zstd level %d: want 1 (fastest) to 22 (smallest)", level)
		}
	default:
		return Compression{}, fmt.Errorf("unknown compression %q: want gzip or zstd", codec)
	}
	return c, nil
}

// Normalized returns c as it encodes: the codec and default level filled
// in, and a zstd level replaced by the lowest level giving the same
// encoder (klauspost/compress has four: 1, 3, 6 and 10 start them). Two
// compressions encode alike exactly when their normalized forms are
// equal.
func (c Compression) Normalized() Compression {
	switch c.Codec {
	case CodecZstd:
		if c.Level == 0 {
			c.Level = DefaultZstdLevel
		}
		switch zstd.EncoderLevelFromZstd(c.Level) {
		case zstd.SpeedFastest:
			c.Level = 1
		case zstd.SpeedDefault:
			c.Level = 3
		case zstd.SpeedBetterCompression:
			c.Level = 6
		default:
			c.Level = 10
		}
	default:
		c.Codec = CodecGzip
		if c.Level == 0 {
			c.Level = DefaultGzipLevel
		}
	}
	return c
}

// String is how messages name c: "gzip level 6".
func (c Compression) String() string {
	n := c.Normalized()
	return fmt.Sprintf("%s level %d", n.Codec, n.Level)
}

// MediaType returns the OCI layer media type of blobs compressed with c.
func (c Compression) MediaType() (types.MediaType, error) {
	switch c.Codec {
	case CodecGzip, "":
		return types.OCILayer, nil
	case CodecZstd:
		return types.OCILayerZStd, nil
	}
	return "", fmt.Errorf("unknown compression %q: want gzip or zstd", string(c.Codec))
}

// encoder starts compressing to w as c says: gzip with klauspost/pgzip,
// which compresses blocks on up to gzipBlocks cores (on 2 cores, half the
// time of one klauspost/compress stream at level 5 for the same size;
// containers/image, so buildah, uses it too), zstd with klauspost/compress's
// concurrent stream encoder (a block compressed while the one before is
// written: 0.29 s for the 128 MB Debian base tar at level 3 on 2 cores,
// 0.61 s with one goroutine). Neither's bytes depend on the number of
// cores. (zstd's WithConcurrentBlocks, jobs of 32 MiB compressed at once,
// was measured too: no faster on 2 cores, twice the memory, and other
// bytes.)
func (c Compression) encoder(w io.Writer) (io.WriteCloser, error) {
	n := c.Normalized()
	if n.Codec == CodecZstd {
		enc, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(n.Level)),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
		if err != nil {
			return nil, fmt.Errorf("starting zstd: %w", err)
		}
		return enc, nil
	}
	gw, err := pgzip.NewWriterLevel(w, n.Level)
	if err != nil {
		return nil, fmt.Errorf("starting gzip: %w", err)
	}
	if err := gw.SetConcurrency(1<<20, min(runtime.GOMAXPROCS(0), gzipBlocks)); err != nil {
		return nil, fmt.Errorf("starting gzip: %w", err)
	}
	return gw, nil
}

// Layer is a committed layer blob: a compressed tar in a file whose digest,
// diffID, size and media type were computed when it was written. It
// implements v1.Layer without ever re-reading the file to learn them.
type Layer struct {
	path        string
	diffID      v1.Hash
	digest      v1.Hash
	size        int64
	mediaType   types.MediaType
	compression Compression // normalized; zero when not known (OpenLayer)
}

var _ v1.Layer = (*Layer)(nil)

// WriteLayer reads the uncompressed layer tar once, compresses it with c
// and stores the blob in dir, named by its digest's hex. The diffID (sha256
// of the tar) and the digest (sha256 of the blob) are computed in the same
// pass. On error nothing is left in dir.
func WriteLayer(ctx context.Context, tar io.Reader, dir string, c Compression) (*Layer, error) {
	return writeLayer(ctx, tar, dir, c, v1.Hash{}, nil)
}

// errDiffID is writeLayer's error for a tar that is not the diffID asked.
var errDiffID = errors.New("the tar is not the layer's")

// writeLayer is WriteLayer, checking the tar is diffID (unless zero)
// before the blob is named (a blob of other content of the same digest
// may be there already), and telling g (if not nil) of the blob's file
// and of every write to it (g's end is the caller's).
func writeLayer(ctx context.Context, tar io.Reader, dir string, c Compression, diffID v1.Hash, g *growingBlob) (*Layer, error) {
	mt, err := c.MediaType()
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, blobTempPattern("layer"))
	if err != nil {
		return nil, fmt.Errorf("creating layer blob: %w", err)
	}
	var w io.Writer = tmp
	if g != nil {
		g.begin(tmp.Name())
		w = &growingWriter{w: tmp, g: g}
	}
	l, err := writeBlob(ctx, tar, w, c)
	if err == nil && diffID != (v1.Hash{}) && l.diffID != diffID {
		err = fmt.Errorf("%w: its diffID is %s", errDiffID, l.diffID)
	}
	if err == nil {
		// Durable before it is named: a cache entry recorded after this
		// never names a blob a crash emptied.
		if err = tmp.Sync(); err != nil {
			err = fmt.Errorf("syncing layer blob: %w", err)
		}
	}
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing layer blob: %w", cerr)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return nil, err
	}
	l.mediaType, l.compression = mt, c.Normalized()
	l.path = filepath.Join(dir, l.digest.Hex)
	rename := os.Rename
	if g != nil {
		rename = g.rename
	}
	if err := seal(tmp.Name()); err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("naming layer blob: %w", err)
	}
	if err := rename(tmp.Name(), l.path); err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("naming layer blob: %w", err)
	}
	return l, nil
}

// growingWriter writes to a growingBlob's file and tells it.
type growingWriter struct {
	w io.Writer
	g *growingBlob
}

func (gw *growingWriter) Write(p []byte) (int, error) {
	n, err := gw.w.Write(p)
	gw.g.wrote(n)
	return n, err
}

// writeBlob streams tar through the compressor into f, hashing both sides.
func writeBlob(ctx context.Context, tar io.Reader, f io.Writer, c Compression) (*Layer, error) {
	blobHash := sha256.New()
	blob := &countWriter{w: io.MultiWriter(f, blobHash)}
	zw, err := c.encoder(blob)
	if err != nil {
		return nil, err
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
	_ = awaitNaming(path) // a blob that failed to be named is not there
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

// Check returns an error, and removes the blob, if its file no longer
// holds its digest's content (see checkSealed): call it before handing the
// blob to an output.
func (l *Layer) Check() error {
	if err := awaitNaming(l.path); err != nil {
		return err
	}
	return checkSealed(l.path, l.digest)
}

// Digest is the sha256 of the compressed blob.
func (l *Layer) Digest() (v1.Hash, error) { return l.digest, nil }

// DiffID is the sha256 of the uncompressed tar.
func (l *Layer) DiffID() (v1.Hash, error) { return l.diffID, nil }

// Size is the size of the compressed blob.
func (l *Layer) Size() (int64, error) { return l.size, nil }

// MediaType is the OCI layer media type (gzip or zstd).
func (l *Layer) MediaType() (types.MediaType, error) { return l.mediaType, nil }

// Compression is how WriteLayer encoded the blob, normalized; the zero
// Compression for a layer opened with OpenLayer, whose level is not known.
func (l *Layer) Compression() Compression { return l.compression }

// Compressed opens the blob (once named, if StreamLayer names it in the
// background).
func (l *Layer) Compressed() (io.ReadCloser, error) {
	if err := awaitNaming(l.path); err != nil {
		return nil, err
	}
	return os.Open(l.path)
}

// Uncompressed opens the blob and decompresses it.
func (l *Layer) Uncompressed() (io.ReadCloser, error) {
	f, err := l.Compressed()
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
		return gunzip.NewReader(rc)
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
