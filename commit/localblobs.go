package commit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// SaveBlob stores l's compressed blob in dir, named by its digest hex, and
// returns it as a local layer. In the same single pass over the blob that
// writes it, its digest and size are checked and its decompressed content
// is hashed and checked against l's diffID (the one its image's config
// claims): a mismatch is an error naming the layer and both diffIDs, and
// nothing is left in dir. A blob dir already holds is not fetched again;
// its diffID is checked by reading it from dir once, and then known from
// the record kept beside it (see knownDiffID).
func SaveBlob(ctx context.Context, l v1.Layer, dir string) (*Layer, error) {
	return StreamLayer(ctx, l, dir, nil)
}

// StreamLayer is SaveBlob that also gives use the layer's decompressed
// content (its tar) in the same pass: pulling, verifying and unpacking a
// base layer stream into one another, the blob written to a temp file in
// dir as it arrives and renamed into place only once its digest, size
// and diffID are checked (on any error, or if the process is killed,
// nothing but a temp named for this process is left; see
// CleanBlobTemps). Content use reads before those checks end is the
// claimed content only if use checks the diffID too, as layers.Store's
// Unpack does. A blob dir already holds is read from there, checked
// unless known, and given to use; a layer already local (a *Layer) is
// only given to use. An error of use is returned as it is, unless the
// content was not the claimed one.
func StreamLayer(ctx context.Context, l v1.Layer, dir string, use func(tar io.Reader) error) (*Layer, error) {
	if local, ok := localOf(l); ok {
		if use == nil {
			return local, nil
		}
		return local, useLocal(local, use)
	}
	want, mt, err := sumsOf(l)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, want.digest.Hex)
	if local, err := OpenLayer(path, want.diffID, want.digest, want.size, mt); err == nil {
		if err := checkSaved(ctx, local, use); err != nil {
			return nil, err
		}
		return local, nil
	}
	if err := fetchBlob(ctx, l, dir, want, mt, use); err != nil {
		return nil, err
	}
	if use != nil {
		// Its blob is being synced and named: its readers, and
		// OpenLayer of its path, wait for that.
		return &Layer{path: path, diffID: want.diffID, digest: want.digest, size: want.size, mediaType: mt}, nil
	}
	return OpenLayer(path, want.diffID, want.digest, want.size, mt)
}

// sumsOf is what l says of itself: its size, digest and claimed diffID.
func sumsOf(l v1.Layer) (blobSums, types.MediaType, error) {
	dg, err := l.Digest()
	if err != nil {
		return blobSums{}, "", err
	}
	diffID, err := l.DiffID()
	if err != nil {
		return blobSums{}, "", err
	}
	mt, err := l.MediaType()
	if err != nil {
		return blobSums{}, "", err
	}
	size, err := l.Size()
	if err != nil {
		return blobSums{}, "", err
	}
	return blobSums{size: size, digest: dg, diffID: diffID}, mt, nil
}

// useLocal gives use the content of a layer committed here.
func useLocal(l *Layer, use func(io.Reader) error) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := use(rc); err != nil {
		return err
	}
	return rc.Close()
}

// fetchBlob writes l's compressed blob to dir/<digest hex> if its size,
// digest and diffID are those of want; else it leaves nothing in dir. use,
// if not nil, gets the content as it is fetched; then fetchBlob returns
// once the content is checked and use is done, and the blob is synced and
// named in the background (nameInBackground): use, unpacking a base
// layer, is what a build waits for, and nothing needs the blob before an
// output, which opens it by its path and so waits for it.
func fetchBlob(ctx context.Context, l v1.Layer, dir string, want blobSums, mt types.MediaType, use func(io.Reader) error) error {
	first, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("fetching layer %s: %w", want.digest, err)
	}
	// A connection lost in the middle is fetched again: the temp file
	// and use get one whole stream, or the fetch fails.
	var rc io.ReadCloser = newResumingReader(ctx, first, want.size, l.Compressed)
	defer rc.Close()
	tmp, err := os.CreateTemp(dir, blobTempPattern("fetch"))
	if err != nil {
		return fmt.Errorf("fetching layer %s: %w", want.digest, err)
	}
	var w io.Writer = tmp // synced by readBlob: durable before it is named by its digest
	if use != nil {
		w = struct{ io.Writer }{tmp} // synced by name, below
	}
	got, err := readBlob(ctx, rc, w, mt, use)
	if err := checkSums(want, got, err); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	path := filepath.Join(dir, want.digest.Hex)
	name := func() error {
		var err error
		if use != nil {
			if err = tmp.Sync(); err != nil {
				err = fmt.Errorf("syncing blob: %w", err)
			}
		}
		if cerr := tmp.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("writing blob: %w", cerr)
		}
		if err == nil {
			err = seal(tmp.Name())
		}
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
		if err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("saving layer %s: %w", want.digest, err)
		}
		recordDiffID(path, got.diffID)
		return nil
	}
	if use == nil {
		return name()
	}
	nameInBackground(path, name)
	return nil
}

// checkSums compares what a read of a blob found with what was claimed;
// err is the read's. A content not the claimed one is the error that
// explains any other.
func checkSums(want, got blobSums, err error) error {
	var uerr *useError
	switch {
	case errors.As(err, &uerr) && uerr.whole && got.diffID != want.diffID:
		return diffIDError(want.digest, want.diffID, got.diffID)
	case uerr != nil:
		return uerr.err
	case err != nil:
		return fmt.Errorf("fetching layer %s: %w", want.digest, err)
	case got.digest != want.digest || got.size != want.size:
		return fmt.Errorf("fetching layer %s: got %s, %d bytes; want %d bytes", want.digest, got.digest, got.size, want.size)
	case got.diffID != want.diffID:
		return diffIDError(want.digest, want.diffID, got.diffID)
	}
	return nil
}

// checkSaved checks that the blob of local, saved earlier, decompresses to
// the diffID local claims now (another image may claim another one for
// the same blob), reading it unless that is known, and gives its content
// to use if not nil.
func checkSaved(ctx context.Context, local *Layer, use func(io.Reader) error) error {
	known, ok := knownDiffID(local.path)
	if ok && known != local.diffID {
		return diffIDError(local.digest, local.diffID, known)
	}
	if ok && use == nil {
		return nil
	}
	f, err := os.Open(local.path)
	if err != nil {
		return fmt.Errorf("reading layer %s: %w", local.digest, err)
	}
	defer f.Close()
	got, err := readBlob(ctx, f, io.Discard, local.mediaType, use)
	var uerr *useError
	switch {
	case errors.As(err, &uerr) && !uerr.whole:
		return uerr.err
	case err != nil && uerr == nil:
		return fmt.Errorf("reading layer %s: %w", local.digest, err)
	}
	if got.digest != local.digest {
		return fmt.Errorf("layer blob %s is corrupt: it has digest %s (remove it and build again)", local.path, got.digest)
	}
	recordDiffID(local.path, got.diffID)
	if got.diffID != local.diffID {
		return diffIDError(local.digest, local.diffID, got.diffID)
	}
	if uerr != nil {
		return uerr.err
	}
	return nil
}

// WithLocalBlobs returns img with every layer whose blob dir holds (see
// SaveBlob) read from there instead: writing a layout or an archive then
// copies, or links, local files instead of fetching from a registry. Keep
// the original image for pushes, whose remote layers can be mounted across
// repositories.
func WithLocalBlobs(img v1.Image, dir string) v1.Image {
	return &localBlobs{Image: img, dir: dir}
}

type localBlobs struct {
	v1.Image
	dir string
}

// local is l's blob under the state root, checked (see Layer.Check), or l
// itself when the state root has none.
func (i *localBlobs) local(l v1.Layer) (v1.Layer, error) {
	local, ok := localOf(l)
	if !ok {
		want, mt, err := sumsOf(l)
		if err != nil {
			return l, nil
		}
		if local, err = OpenLayer(filepath.Join(i.dir, want.digest.Hex), want.diffID, want.digest, want.size, mt); err != nil {
			return l, nil
		}
	}
	if err := local.Check(); err != nil {
		return nil, err
	}
	return local, nil
}

func (i *localBlobs) Layers() ([]v1.Layer, error) {
	ls, err := i.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for j, l := range ls {
		if out[j], err = i.local(l); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (i *localBlobs) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := i.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return i.local(l)
}

func (i *localBlobs) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	l, err := i.Image.LayerByDiffID(h)
	if err != nil {
		return nil, err
	}
	return i.local(l)
}

// linkBlobs hardlinks the blobs of img's local layers into a layout being
// written at dir, so that the layout writer finds them there and copies
// nothing. Where linking fails (another filesystem), the writer copies.
// A blob under the state root is synced before it is named there
// (WriteLayer, fetchBlob), so syncing it again here, before the layout's
// index.json can name it, has no data to write unless a state root of
// an older strata holds it; one that cannot be synced is unlinked, and
// the writer copies it, synced.
func linkBlobs(img v1.Image, dir string) error {
	ls, err := img.Layers()
	if err != nil {
		return err // a blob changed under the state root (Layer.Check)
	}
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return nil // the writer copies, and says what fails
	}
	for _, l := range ls {
		local, ok := localOf(l)
		if !ok {
			continue
		}
		// Blobs are content-addressed and never written again: sharing
		// the inode is safe. Readable by all, as a copied blob would be.
		_ = os.Chmod(local.path, 0o644)
		link := filepath.Join(blobs, local.digest.Hex)
		if os.Link(local.path, link) == nil && syncPath(link) != nil {
			_ = os.Remove(link)
		}
	}
	return nil
}
