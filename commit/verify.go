package commit

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/stratabuild/strata/internal/bufpipe"
)

// VerifyImage checks what can be checked of a base image without reading
// its layers: its config lists one rootfs diff_id per layer of its
// manifest, and a blob its manifest lists more than once has one diff_id,
// one media type and one size. A config that lists one too few or too
// many would be copied into every image built on the base, which runtimes
// then refuse; so would a second diff_id for one blob, which nothing else
// checks: a layer is read once per digest, and go-containerregistry gives
// every entry of a digest the first entry's claims. Each layer's content
// is checked against its diff_id by SaveBlob.
func VerifyImage(img v1.Image) error {
	m, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("reading the base image's manifest: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("reading the base image's config: %w", err)
	}
	if got, want := len(cf.RootFS.DiffIDs), len(m.Layers); got != want {
		return fmt.Errorf("the base image's config lists %d diff_ids for the %d layers of its manifest (the image is corrupt or forged)", got, want)
	}
	first := make(map[v1.Hash]int, len(m.Layers))
	for i, d := range m.Layers {
		j, ok := first[d.Digest]
		if !ok {
			first[d.Digest] = i
			continue
		}
		e := m.Layers[j]
		var what string
		switch {
		case cf.RootFS.DiffIDs[i] != cf.RootFS.DiffIDs[j]:
			what = fmt.Sprintf("diff_ids %s and %s", cf.RootFS.DiffIDs[j], cf.RootFS.DiffIDs[i])
		case d.MediaType != e.MediaType:
			what = fmt.Sprintf("media types %s and %s", e.MediaType, d.MediaType)
		case d.Size != e.Size:
			what = fmt.Sprintf("sizes %d and %d", e.Size, d.Size)
		default:
			continue
		}
		return fmt.Errorf("the base image lists layer %s twice (layers %d and %d) with %s (the image is corrupt or forged)", d.Digest, j+1, i+1, what)
	}
	return nil
}

// BaseLayers returns img's layers, each reporting as its DiffID the
// diff_id img's config claims for it, after VerifyImage's check. SaveBlob
// then checks each layer's content against that claim, the one copied
// into images built on img. (A layer read from an OCI layout otherwise
// reports the diffID of its content, found by decompressing it, and a
// config that lies would pass unseen.)
func BaseLayers(img v1.Image) ([]v1.Layer, error) {
	if err := VerifyImage(img); err != nil {
		return nil, err
	}
	ls, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("reading the base image's layers: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the base image's config: %w", err)
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		if _, ok := l.(*remote.MountableLayer); ok {
			// A registry layer reports the config's claim already, and
			// must stay mountable into other repositories when pushed.
			out[i] = l
			continue
		}
		out[i] = &claimedLayer{Layer: l, diffID: cf.RootFS.DiffIDs[i]}
	}
	return out, nil
}

// claimedLayer is a base layer whose DiffID is its config's claim.
type claimedLayer struct {
	v1.Layer
	diffID v1.Hash
}

// DiffID is the diff_id the image's config claims for the layer.
func (l *claimedLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }

// blobSums is what one read of a layer blob found.
type blobSums struct {
	size   int64
	digest v1.Hash // sha256 of the compressed blob
	diffID v1.Hash // sha256 of the decompressed tar
}

// readBlob reads the compressed blob r once, passing it to w as it goes,
// and returns its size, its digest and the diffID of its decompressed
// content (mt says how it is compressed). If use is not nil it is given
// the decompressed content as it is made (and what it leaves unread is
// read after it returns): decompression runs in its own goroutine, so on
// two cores it overlaps with what use does. Memory stays flat: the
// decompressor reads from the same stream w is written from. If w can
// Sync (a file), it is synced once the whole blob is written, while use
// still works through the end of the content. If use fails before the
// blob is read, r is closed if it can be, so that a read stalled on it
// (a registry that stopped sending) does not hold the failure up.
func readBlob(ctx context.Context, r io.Reader, w io.Writer, mt types.MediaType, use func(io.Reader) error) (blobSums, error) {
	if use == nil {
		sums, err := sumBlob(ctx, r, w, mt, io.Discard)
		if err == nil {
			err = syncBlob(w)
		}
		return sums, err
	}
	pipe := &tarPipe{Pipe: bufpipe.New()}
	type result struct {
		sums      blobSums
		err, sync error
	}
	done := make(chan result, 1)
	go func() {
		sums, err := sumBlob(ctx, r, w, mt, pipe)
		if err == nil {
			pipe.setDigest(digest.Digest(sums.diffID.String()))
		}
		pipe.CloseWrite(err)
		var serr error
		if err == nil {
			serr = syncBlob(w)
		}
		done <- result{sums, err, serr}
	}()
	uerr := use(pipe)
	if uerr == nil {
		_, uerr = io.Copy(io.Discard, pipe)
	}
	pipe.CloseRead(errReaderStopped) // stops the decompressor if use failed
	var res result
	stopped := false
	select {
	case res = <-done:
	default:
		if c, ok := r.(io.Closer); ok && uerr != nil {
			// The blob is not read yet (or only being synced): its
			// sums no longer matter, and a read of r may be stalled.
			c.Close()
			stopped = true
		}
		res = <-done
	}
	switch {
	case uerr != nil && res.err == nil:
		// The whole content was read: a content that is not the one
		// claimed is the cause, whatever use made of it.
		return res.sums, &useError{err: uerr, whole: true}
	case uerr != nil && (stopped || errors.Is(res.err, errReaderStopped)):
		return blobSums{}, &useError{err: uerr}
	case res.err != nil:
		return res.sums, res.err
	}
	return res.sums, res.sync
}

// syncBlob syncs w if it can be synced (a file).
func syncBlob(w io.Writer) error {
	f, ok := w.(interface{ Sync() error })
	if !ok {
		return nil
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing blob: %w", err)
	}
	return nil
}

// A tarPipe carries a layer's content from its decompression to a use of
// it, and knows the content's digest (its diffID, hashed as it was
// decompressed) once read to its end: layers.Store's Unpack, which checks
// the diffID of what it extracts, asks it instead of hashing the content
// again.
type tarPipe struct {
	*bufpipe.Pipe

	mu     sync.Mutex
	digest digest.Digest
}

func (p *tarPipe) setDigest(d digest.Digest) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.digest = d
}

// TarDigest is the digest of the whole content, once it has been read to
// its end; before, it is "" or already that digest.
func (p *tarPipe) TarDigest() digest.Digest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.digest
}

// useError is the error of readBlob's use, when reading the blob went
// well: if the whole blob was read (whole), the caller checks the sums
// first.
type useError struct {
	err   error
	whole bool
}

func (e *useError) Error() string { return e.err.Error() }
func (e *useError) Unwrap() error { return e.err }

var errReaderStopped = errors.New("the layer's reader stopped")

// sumBlob is readBlob's single pass: the content, decompressed, goes to
// content.
func sumBlob(ctx context.Context, r io.Reader, w io.Writer, mt types.MediaType, content io.Writer) (blobSums, error) {
	blobHash := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, blobHash)}
	src := &errReader{r: ctxReader{ctx, r}}
	tee := io.TeeReader(src, cw)
	// Large reads: the blob file gets few big writes, and the
	// decompressor, given an io.ByteReader, adds no buffer of its own.
	zr, err := decompress(io.NopCloser(bufio.NewReaderSize(tee, 256<<10)), mt)
	if err != nil {
		switch {
		case cw.err != nil:
			err = cw.err
		case src.err != nil:
			return blobSums{}, src.err
		}
		return blobSums{}, fmt.Errorf("decompressing: %w", err)
	}
	tarHash := sha256.New()
	_, err = io.Copy(io.MultiWriter(tarHash, content), zr)
	if cerr := zr.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// Whatever follows the compressed stream belongs to the blob too.
		_, err = io.Copy(io.Discard, tee)
	}
	if cw.err != nil {
		return blobSums{}, fmt.Errorf("writing blob: %w", cw.err)
	}
	if errors.Is(err, errReaderStopped) {
		return blobSums{}, err
	}
	if src.err != nil {
		// The blob could not be read (a connection lost): the
		// decompressor's error, an early end of its stream, says less.
		return blobSums{}, src.err
	}
	if err != nil {
		return blobSums{}, fmt.Errorf("decompressing: %w", err)
	}
	return blobSums{size: cw.n, digest: sha256Hash(blobHash), diffID: sha256Hash(tarHash)}, nil
}

// errReader remembers the first error of r other than io.EOF.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && e.err == nil {
		e.err = err
	}
	return n, err
}

// diffIDError reports a layer whose content does not hash to the diffID
// its image's config claims.
func diffIDError(digest, claimed, got v1.Hash) error {
	return fmt.Errorf("layer %s: its content has diff_id %s but the image config claims %s (the base image is corrupt or forged)", digest, got, claimed)
}
