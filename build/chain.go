package build

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/stratabuild/strata/commit"
)

// chainLayer is one layer of a stage's filesystem: a base layer or one a
// step committed (or found in the cache). Its snapshot is made only when a
// step has to run on top of it, so that a fully cached build — or a remote
// cache hit — unpacks and downloads nothing.
type chainLayer struct {
	diffID string
	layer  v1.Layer // what the image lists; read to make the snapshot (a step's may be a *commit.Pending)
	origin string   // for messages: "base REF", or "" for a step's layer

	mu  sync.Mutex // guards dir: stages share layers
	dir string     // the snapshot, "" until made
}

// diffIDs lists the chain's diffIDs, bottom first: a cache key's parent.
// ok is false when one is unknown (a dry run's step that would run).
func diffIDs(chain []*chainLayer) (ids []string, ok bool) {
	ids = make([]string, len(chain))
	for i, l := range chain {
		if l.diffID == "" {
			return nil, false
		}
		ids[i] = l.diffID
	}
	return ids, true
}

// lowers makes the snapshots of chain that are missing and returns their
// dirs, top first, as overlay wants them.
func (e *executor) lowers(ctx context.Context, stage string, chain []*chainLayer) ([]string, time.Duration, error) {
	out := make([]string, len(chain))
	start := time.Now()
	var made atomic.Int32
	// The layers of a chain are independent: they unpack at once, a few
	// at a time (each is CPU-bound decompressing and IO-bound writing).
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(2, runtime.NumCPU()))
	for i, l := range chain {
		g.Go(func() error {
			dir, fresh, err := e.snapshot(gctx, l)
			if fresh {
				made.Add(1)
			}
			out[len(chain)-1-i] = dir
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, 0, err
	}
	took := time.Since(start)
	if made.Load() == 0 {
		return out, 0, nil
	}
	e.emit(Event{Kind: EventInfo, Time: time.Now(), Stage: stage, Text: fmt.Sprintf("%d layers unpacked in %s", made.Load(), took.Round(time.Millisecond))})
	return out, took, nil
}

// snapshot returns l's snapshot dir, unpacking the layer if the store
// does not have it; fresh says whether it did.
func (e *executor) snapshot(ctx context.Context, l *chainLayer) (dir string, fresh bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dir != "" {
		return l.dir, false, nil
	}
	d := toDigest(l.diffID)
	if dir, ok := e.store.Lookup(d); ok {
		l.dir = dir
		return dir, false, nil
	}
	// One pass: the blob is fetched (or read from the state root),
	// written under the state root for later outputs, checked against
	// its digest and the diffID its image claims, and unpacked as it is
	// decompressed (Unpack checks the diffID too before it publishes).
	_, err = commit.StreamLayer(ctx, l.layer, e.root.Blobs(), func(tar io.Reader) error {
		dir, err = e.store.Unpack(ctx, d, tar)
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
func (l *chainLayer) errorf(err error) error {
	if l.origin == "" {
		return fmt.Errorf("layer %s: %w", l.diffID, err)
	}
	dg, _ := l.layer.Digest()
	return fmt.Errorf("%s: layer %s: %w", l.origin, dg, err)
}

// imageChain lists an image's layers as a chain, snapshots not yet made,
// each with the diffID the image's config claims for it.
func imageChain(img v1.Image, origin string) ([]*chainLayer, error) {
	ls, err := commit.BaseLayers(img)
	if err != nil {
		return nil, err
	}
	chain := make([]*chainLayer, len(ls))
	for i, l := range ls {
		d, err := l.DiffID()
		if err != nil {
			return nil, err
		}
		chain[i] = &chainLayer{diffID: d.String(), layer: l, origin: origin}
	}
	return chain, nil
}

func toDigest(s string) digest.Digest { return digest.Digest(s) }
