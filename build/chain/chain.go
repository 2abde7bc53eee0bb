// Package chain is a stage's filesystem as a chain of layers — its base
// image's and the ones its steps made — and the workspace where a step
// makes the next layer: the chain's snapshots, unpacked only when a step
// has to run on them, mounted under a fresh upper dir; what the step
// changed there diffed into a tar whose sha256 is the layer's diffID, and
// kept as a snapshot for the steps after it.
package chain

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/layers"
)

// Layer is one layer of a stage's filesystem: a base layer or one a step
// committed (or found in the cache). Its snapshot is made only when a step
// has to run on top of it, so that a fully cached build — or a remote
// cache hit — unpacks and downloads nothing. A Layer without a DiffID is
// unknown: what a dry run's step that would run leaves.
type Layer struct {
	DiffID string
	// Layer is what the image lists, read to make the snapshot: a step's
	// may be a *commit.Pending, still being compressed.
	Layer v1.Layer
	// Origin names a base layer's image in messages ("base REF"); "" for
	// a step's layer.
	Origin string

	mu  sync.Mutex // guards dir: stages share layers
	dir string     // the snapshot, "" until made
}

// Of lists an image's layers as a chain, snapshots not yet made, each with
// the diffID the image's config claims for it.
func Of(img v1.Image, origin string) ([]*Layer, error) {
	ls, err := commit.BaseLayers(img)
	if err != nil {
		return nil, err
	}
	c := make([]*Layer, len(ls))
	for i, l := range ls {
		d, err := l.DiffID()
		if err != nil {
			return nil, err
		}
		c[i] = &Layer{DiffID: d.String(), Layer: l, Origin: origin}
	}
	return c, nil
}

// DiffIDs lists the chain's diffIDs, bottom first: a cache key's parent.
// It waits for those of a Trim's layers, learned as they are compressed
// (a failed compression is the error); ok is false when one is unknown
// (a dry run's step that would run).
func DiffIDs(ctx context.Context, c []*Layer) (ids []string, ok bool, err error) {
	ids = make([]string, len(c))
	for i, l := range c {
		p, pending := l.Layer.(*commit.Pending)
		switch {
		case l.DiffID != "":
			ids[i] = l.DiffID
		case pending:
			d, err := p.WaitDiffID(ctx)
			if err != nil {
				return nil, false, err
			}
			ids[i] = d.String()
		default:
			return nil, false, nil
		}
	}
	return ids, true, nil
}

// Workspace makes snapshots and mounts them for steps; a build has one.
type Workspace struct {
	Store *layers.Store
	// Blobs is where base layers' blobs are written as they are unpacked,
	// for later outputs.
	Blobs string
	// Mounts is the dir the mount points are made in.
	Mounts  string
	Mounter Mounter
	Log     *slog.Logger
}

// Lowers makes the snapshots of c that are missing and returns their dirs,
// top first, as overlay wants them, with how many it made and the time it
// spent making them (0 when it made none).
func (w *Workspace) Lowers(ctx context.Context, c []*Layer) (dirs []string, made int, took time.Duration, err error) {
	dirs = make([]string, len(c))
	start := time.Now()
	var n atomic.Int32
	// The layers of a chain are independent: they unpack at once, a few
	// at a time (each is CPU-bound decompressing and IO-bound writing).
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(2, runtime.NumCPU()))
	// An image may list one layer twice: it is unpacked (and fetched)
	// once, and its dir stands at both places.
	first := map[string]int{}
	same := map[int]int{}
	for i, l := range c {
		if j, ok := first[l.DiffID]; ok && l.DiffID != "" {
			same[i] = j
			continue
		}
		first[l.DiffID] = i
		g.Go(func() error {
			dir, fresh, err := w.snapshot(gctx, l)
			if fresh {
				n.Add(1)
			}
			dirs[len(c)-1-i] = dir
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, 0, 0, err
	}
	for i, j := range same {
		dir := dirs[len(c)-1-j]
		c[i].mu.Lock()
		c[i].dir = dir // what a layer's diff reads for the lowers below it
		c[i].mu.Unlock()
		dirs[len(c)-1-i] = dir
	}
	if n.Load() == 0 {
		return dirs, 0, 0, nil
	}
	return dirs, int(n.Load()), time.Since(start), nil
}

// snapshot returns l's snapshot dir, unpacking the layer if the store
// does not have it; fresh says whether it did.
func (w *Workspace) snapshot(ctx context.Context, l *Layer) (dir string, fresh bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dir != "" {
		return l.dir, false, nil
	}
	d := digest.Digest(l.DiffID)
	if dir, ok := w.Store.Lookup(d); ok {
		l.dir = dir
		return dir, false, nil
	}
	// One pass: the blob is fetched (or read from the state root),
	// written under the state root for later outputs, checked against
	// its digest and the diffID its image claims, and unpacked as it is
	// decompressed (Unpack checks the diffID too before it publishes).
	_, err = commit.StreamLayer(ctx, l.Layer, w.Blobs, func(tar io.Reader) error {
		dir, err = w.Store.Unpack(ctx, d, tar)
		return err
	})
	if err != nil {
		return "", false, l.errorf(err)
	}
	l.dir = dir
	return dir, true, nil
}

// errorf names the layer, and the image it comes from, in err: a step's
// by its diffID (its blob may still be compressing), a base's by digest.
func (l *Layer) errorf(err error) error {
	if l.Origin == "" {
		return fmt.Errorf("layer %s: %w", l.DiffID, err)
	}
	dg, _ := l.Layer.Digest()
	return fmt.Errorf("%s: layer %s: %w", l.Origin, dg, err)
}
