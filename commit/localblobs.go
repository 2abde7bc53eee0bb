package commit

import (
	"context"
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
// its diffID is checked by reading it from dir, once per process.
func SaveBlob(ctx context.Context, l v1.Layer, dir string) (*Layer, error) {
	if local, ok := l.(*Layer); ok {
		return local, nil
	}
	dg, err := l.Digest()
	if err != nil {
		return nil, err
	}
	diffID, err := l.DiffID()
	if err != nil {
		return nil, err
	}
	mt, err := l.MediaType()
	if err != nil {
		return nil, err
	}
	size, err := l.Size()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, dg.Hex)
	if local, err := OpenLayer(path, diffID, dg, size, mt); err == nil {
		if err := checkSaved(ctx, local); err != nil {
			return nil, err
		}
		return local, nil
	}
	if err := fetchBlob(ctx, l, dir, blobSums{size: size, digest: dg, diffID: diffID}, mt); err != nil {
		return nil, err
	}
	verified.Store(path, diffID)
	return OpenLayer(path, diffID, dg, size, mt)
}

// fetchBlob writes l's compressed blob to dir/<digest hex> if its size,
// digest and diffID are those of want; else it leaves nothing in dir.
func fetchBlob(ctx context.Context, l v1.Layer, dir string, want blobSums, mt types.MediaType) error {
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("fetching layer %s: %w", want.digest, err)
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(dir, ".fetch-*")
	if err != nil {
		return fmt.Errorf("fetching layer %s: %w", want.digest, err)
	}
	defer os.Remove(tmp.Name())
	got, err := sumBlob(ctx, rc, tmp, mt)
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("writing blob: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("fetching layer %s: %w", want.digest, err)
	}
	if got.digest != want.digest || got.size != want.size {
		return fmt.Errorf("fetching layer %s: got %s, %d bytes; want %d bytes", want.digest, got.digest, got.size, want.size)
	}
	if got.diffID != want.diffID {
		return diffIDError(want.digest, want.diffID, got.diffID)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, want.digest.Hex)); err != nil {
		return fmt.Errorf("fetching layer %s: %w", want.digest, err)
	}
	return nil
}

// checkSaved checks that the blob of local, saved earlier, decompresses to
// the diffID local claims now (another image may claim another one for
// the same blob).
func checkSaved(ctx context.Context, local *Layer) error {
	if d, ok := verified.Load(local.path); ok && d.(v1.Hash) == local.diffID {
		return nil
	}
	f, err := os.Open(local.path)
	if err != nil {
		return fmt.Errorf("reading layer %s: %w", local.digest, err)
	}
	defer f.Close()
	got, err := sumBlob(ctx, f, io.Discard, local.mediaType)
	if err != nil {
		return fmt.Errorf("reading layer %s: %w", local.digest, err)
	}
	if got.digest != local.digest {
		return fmt.Errorf("layer blob %s is corrupt: it has digest %s (remove it and build again)", local.path, got.digest)
	}
	verified.Store(local.path, got.diffID)
	if got.diffID != local.diffID {
		return diffIDError(local.digest, local.diffID, got.diffID)
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

func (i *localBlobs) local(l v1.Layer) v1.Layer {
	if _, ok := l.(*Layer); ok {
		return l
	}
	dg, err1 := l.Digest()
	diffID, err2 := l.DiffID()
	size, err3 := l.Size()
	mt, err4 := l.MediaType()
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return l
	}
	if local, err := OpenLayer(filepath.Join(i.dir, dg.Hex), diffID, dg, size, mt); err == nil {
		return local
	}
	return l
}

func (i *localBlobs) Layers() ([]v1.Layer, error) {
	ls, err := i.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for j, l := range ls {
		out[j] = i.local(l)
	}
	return out, nil
}

func (i *localBlobs) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := i.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return i.local(l), nil
}

func (i *localBlobs) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	l, err := i.Image.LayerByDiffID(h)
	if err != nil {
		return nil, err
	}
	return i.local(l), nil
}

// linkBlobs hardlinks the blobs of img's local layers into a layout being
// written at dir, so that the layout writer finds them there and copies
// nothing. Where linking fails (another filesystem), the writer copies.
func linkBlobs(img v1.Image, dir string) {
	ls, err := img.Layers()
	if err != nil {
		return
	}
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return
	}
	for _, l := range ls {
		local, ok := l.(*Layer)
		if !ok {
			continue
		}
		// Blobs are content-addressed and never written again: sharing
		// the inode is safe. Readable by all, as a copied blob would be.
		_ = os.Chmod(local.path, 0o644)
		_ = os.Link(local.path, filepath.Join(blobs, local.digest.Hex))
	}
}
