package commit

import (
	"context"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ctxImage makes the blob reads of img's layers stop once ctx is done, for
// ggcr writers that take no context.
func ctxImage(ctx context.Context, img v1.Image) v1.Image {
	return &ctxImg{Image: img, ctx: ctx}
}

type ctxImg struct {
	v1.Image
	ctx context.Context
}

func (i *ctxImg) Layers() ([]v1.Layer, error) {
	ls, err := i.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for n, l := range ls {
		out[n] = &ctxLayer{Layer: l, ctx: i.ctx}
	}
	return out, nil
}

func (i *ctxImg) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := i.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return &ctxLayer{Layer: l, ctx: i.ctx}, nil
}

func (i *ctxImg) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	l, err := i.Image.LayerByDiffID(h)
	if err != nil {
		return nil, err
	}
	return &ctxLayer{Layer: l, ctx: i.ctx}, nil
}

type ctxLayer struct {
	v1.Layer
	ctx context.Context
}

func (l *ctxLayer) Compressed() (io.ReadCloser, error) {
	return l.wrap(l.Layer.Compressed())
}

func (l *ctxLayer) Uncompressed() (io.ReadCloser, error) {
	return l.wrap(l.Layer.Uncompressed())
}

func (l *ctxLayer) wrap(rc io.ReadCloser, err error) (io.ReadCloser, error) {
	if err != nil {
		return nil, err
	}
	return &readCloser{Reader: ctxReader{l.ctx, rc}, close: rc.Close}, nil
}
