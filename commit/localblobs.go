package commit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// SaveBlob stores l's compressed blob in dir, named by its digest hex, and
// returns it as a local layer. The digest is checked while the blob is
// written; a blob dir already holds is not fetched again.
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
		return local, nil
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, fmt.Errorf("fetching layer %s: %w", dg, err)
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(dir, ".fetch-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx: ctx, r: rc})
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("fetching layer %s: %w", dg, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != dg.Hex || n != size {
		return nil, fmt.Errorf("fetching layer %s: got sha256:%s, %d bytes", dg, got, n)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, err
	}
	return OpenLayer(path, diffID, dg, size, mt)
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
