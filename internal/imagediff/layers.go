package imagediff

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/stratabuild/strata/internal/gunzip"
)

// compareLayers compares the layers of a and b position by position. The
// pairs whose diffIDs differ are read and compared entry by entry; a pair
// with the same diffID in two blobs is read only to check that both hold
// that content; a pair in the same blob, and extra layers (listed as added
// or removed), are not read.
func compareLayers(ctx context.Context, a, b *side) ([]Layer, error) {
	out := []Layer{}
	for i := 0; i < max(len(a.layers), len(b.layers)); i++ {
		l := Layer{Index: i}
		if i < len(a.layers) {
			blob := a.layers[i].blob
			l.A = &blob
		}
		if i < len(b.layers) {
			blob := b.layers[i].blob
			l.B = &blob
		}
		switch {
		case l.B == nil:
			l.Status = LayerRemoved
		case l.A == nil:
			l.Status = LayerAdded
		case l.A.DiffID == l.B.DiffID:
			l.Status = LayerSame
			if otherBlobs(*l.A, *l.B) {
				// Two blobs claiming one diffID: the same content
				// compressed differently, or a forged claim.
				if _, _, err := readPair(ctx, a, b, i, checkLayer); err != nil {
					return nil, err
				}
			}
		default:
			l.Status = LayerChanged
			ia, ib, err := readPair(ctx, a, b, i, readLayer)
			if err != nil {
				return nil, err
			}
			l.Changes, l.Note = compareIndexes(ia, ib)
		}
		out = append(out, l)
	}
	return out, nil
}

// otherBlobs reports whether a and b are layers in two different blobs;
// false when a side has no manifest (a docker-archive), whose blobs are
// not known.
func otherBlobs(a, b LayerBlob) bool {
	return a.Digest != "" && b.Digest != "" && a.Digest != b.Digest
}

// readPair reads layer i of a and of b at the same time with read. The
// first failure stops the other read and is the one reported.
func readPair(ctx context.Context, a, b *side, i int, read func(context.Context, *side, int) (index, error)) (index, index, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var first error
	var once sync.Once
	fail := func(err error) { once.Do(func() { first = err; cancel() }) }
	var ia, ib index
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var err error
		if ia, err = read(ctx, a, i); err != nil {
			fail(err)
		}
	}()
	var err error
	if ib, err = read(ctx, b, i); err != nil {
		fail(err)
	}
	wg.Wait()
	if first != nil {
		return nil, nil, first
	}
	return ia, ib, nil
}

// readLayer reads layer i of s into an index.
func readLayer(ctx context.Context, s *side, i int) (index, error) {
	ref := s.layers[i]
	rc, err := openTar(s, ref)
	if err != nil {
		return nil, fmt.Errorf("reading layer %d (%s) of %s: %w", i, ref.blob.DiffID, s.Ref, err)
	}
	defer rc.Close()
	idx, err := readIndex(ctx, rc, ref.blob.DiffID)
	if err != nil {
		return nil, fmt.Errorf("reading layer %d (%s) of %s: %w", i, ref.blob.DiffID, s.Ref, err)
	}
	return idx, nil
}

// checkLayer reads layer i of s to its end, only to check that its
// content is the diffID its config claims; it returns no index.
func checkLayer(ctx context.Context, s *side, i int) (index, error) {
	ref := s.layers[i]
	rc, err := openTar(s, ref)
	if err != nil {
		return nil, fmt.Errorf("reading layer %d (%s) of %s: %w", i, ref.blob.DiffID, s.Ref, err)
	}
	defer rc.Close()
	if err := checkDiffID(ctx, rc, ref.blob.DiffID); err != nil {
		return nil, fmt.Errorf("reading layer %d (%s) of %s: %w", i, ref.blob.DiffID, s.Ref, err)
	}
	return nil, nil
}

// Magic numbers of the compressed layer formats.
var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// openTar opens the uncompressed tar stream of a layer. A compressed blob
// is decompressed by internal/gunzip (igzip when it is installed, else
// klauspost/compress) or zstd, faster than the standard library ggcr's
// Uncompressed uses; the layers of an image without a manifest (a
// docker-archive) are stored uncompressed, and asking for their
// Compressed form would compress them.
func openTar(s *side, ref layerRef) (io.ReadCloser, error) {
	if s.noManifest {
		return ref.layer.Uncompressed()
	}
	blob, err := ref.layer.Compressed()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("its blob %s is missing: %w", ref.blob.Digest, err)
	}
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(blob, 1<<16)
	magic, _ := br.Peek(len(zstdMagic)) // a short blob is read as it is
	var r io.Reader = br
	var closeDecoder func() error
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gunzip.NewReader(io.NopCloser(br))
		if err != nil {
			blob.Close()
			return nil, fmt.Errorf("decompressing: %w", err)
		}
		r, closeDecoder = zr, zr.Close
	case bytes.HasPrefix(magic, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderLowmem(true))
		if err != nil {
			blob.Close()
			return nil, fmt.Errorf("decompressing: %w", err)
		}
		r, closeDecoder = zr, func() error { zr.Close(); return nil }
	}
	return &tarStream{Reader: r, blob: blob, closeDecoder: closeDecoder}, nil
}

// tarStream is a decompressed blob; Close closes the decoder and the blob.
type tarStream struct {
	io.Reader
	blob         io.Closer
	closeDecoder func() error
}

func (t *tarStream) Close() error {
	// The blob first: a decoder that reads ahead (igzip's feeder) may be
	// waiting on it, and its Close waits for that read.
	err := t.blob.Close()
	if t.closeDecoder != nil {
		err = errors.Join(t.closeDecoder(), err)
	}
	return err
}
