package commit

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/stream"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Uploader uploads layers to the repositories an image is to be pushed to
// while the build still runs, each as it is compressed (see Add), so that
// the push at the end finds them there (Push asks before it uploads) and
// only puts what is left: the config and the manifest. An upload that
// fails is only logged: the push tries again and reports; but one the
// registry refuses the credentials for is also told to OnRefused, as the
// push would fail the same way once the build is done.
type Uploader struct {
	ctx   context.Context
	repos []name.Repository
	o     RegistryOptions
	log   *slog.Logger
	slots chan struct{} // one per upload running at once
	// refused, if set, is told the first refusal (see OnRefused).
	refused     func(error)
	refusedOnce sync.Once
	// puller asks whether a registry has a blob (see stream); nil if
	// it could not be made.
	puller *remote.Puller

	mu      sync.Mutex // guards waiting, and wg's Go against its Wait
	waiting bool
	wg      sync.WaitGroup
}

// uploadsAtOnce bounds the uploads an Uploader runs at once (and the blob
// files it holds open).
const uploadsAtOnce = 4

// NewUploader returns an Uploader for the repositories of tags; nil when
// there are none. ctx bounds the uploads.
func NewUploader(ctx context.Context, tags []name.Tag, o RegistryOptions, log *slog.Logger) *Uploader {
	u := &Uploader{ctx: ctx, o: o, log: log, slots: make(chan struct{}, uploadsAtOnce)}
	seen := map[string]bool{}
	for _, t := range tags {
		if r := t.Context(); !seen[r.String()] {
			seen[r.String()] = true
			u.repos = append(u.repos, r)
		}
	}
	if len(u.repos) == 0 {
		return nil
	}
	u.puller, _ = remote.NewPuller(RemoteOptions(ctx, o)...)
	return u
}

// OnRefused has f told, once, of the first upload the registry refuses
// for its credentials (401 or 403): a build can stop there rather than
// at its push. Call it before Add.
func (u *Uploader) OnRefused(f func(error)) {
	if u != nil {
		u.refused = f
	}
}

// Add starts uploading l, in the background, to every repository. A
// *Pending is uploaded as it is compressed (see stream). A nil Uploader,
// or one whose Wait has been called, does nothing.
func (u *Uploader) Add(l v1.Layer) {
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.waiting {
		return
	}
	for _, repo := range u.repos {
		u.wg.Go(func() {
			p, pending := l.(*Pending)
			if pending {
				// A layer waiting for the compressor holds no upload slot.
				select {
				case <-p.blob.begun:
				case <-u.ctx.Done():
					return
				}
			}
			select {
			case u.slots <- struct{}{}:
				defer func() { <-u.slots }()
			case <-u.ctx.Done():
				return
			}
			var err error
			if pending {
				err = u.stream(repo, p)
			} else {
				err = remote.WriteLayer(repo, l, RemoteOptions(u.ctx, u.o)...)
			}
			if err != nil {
				u.log.Debug("uploading a layer before the push", "repo", repo, "layer", layerName(l), "err", err)
			}
			if u.refused != nil && AuthRefused(err) {
				u.refusedOnce.Do(func() { u.refused(RegistryError(repo.String(), err)) })
			}
		})
	}
}

// layerName names l in a log: its digest, or a pending layer's diffID
// when it has no digest (yet, or ever).
func layerName(l v1.Layer) string {
	p, pending := l.(*Pending)
	if pending {
		l = streamed{p}
	}
	if dg, err := l.Digest(); err == nil {
		return dg.String()
	}
	if pending && !p.learn {
		return "diffID " + p.diffID.String()
	}
	return "a step's layer"
}

// stream uploads p to repo as it is compressed: from when its compression
// starts, its blob read as it is written; the registry is told the blob's
// digest once it is whole and checked, and a blob not made is never
// completed there. Once the blob is whole, while its upload still runs,
// the registry is asked whether it has the blob already (a layer built
// again the same): then the upload stops there.
func (u *Uploader) stream(repo name.Repository, p *Pending) error {
	if _, ended, _, _, err := p.blob.state(); ended && err != nil {
		return err // not made: nothing to upload
	}
	ctx, cancel := context.WithCancel(u.ctx)
	defer cancel()
	var had atomic.Bool
	asked := make(chan struct{})
	go func() {
		defer close(asked)
		select {
		case <-p.blob.done:
		case <-ctx.Done():
			return
		}
		if u.has(ctx, repo, streamed{p}) {
			had.Store(true)
			cancel()
		}
	}()
	err := remote.WriteLayer(repo, streamed{p}, RemoteOptions(ctx, u.o)...)
	cancel()
	<-asked
	if had.Load() {
		return nil
	}
	return err
}

// has says whether the registry answers a HEAD of l's blob in repo; not
// when it cannot be asked (no pull access, an error).
func (u *Uploader) has(ctx context.Context, repo name.Repository, l v1.Layer) bool {
	dg, err := l.Digest()
	if err != nil || u.puller == nil {
		return false
	}
	rl, err := u.puller.Layer(ctx, repo.Digest(dg.String()))
	if err != nil {
		return false
	}
	_, err = rl.Size() // a HEAD of the blob
	return err == nil
}

// Wait waits for the uploads started; Add starts none after it.
func (u *Uploader) Wait() {
	if u == nil {
		return
	}
	u.mu.Lock()
	u.waiting = true
	u.mu.Unlock()
	u.wg.Wait()
}

// streamed is a Pending as its upload reads it (see Add). Until the blob
// is whole its digest and size are not known (stream.ErrNotComputed):
// the registry client then uploads what it reads, and names the blob
// after the last byte. Its content follows the blob as it is written.
type streamed struct{ p *Pending }

var _ v1.Layer = streamed{}

// whole is the blob once it is whole, or why there is none yet or ever.
func (s streamed) whole() (*Layer, error) {
	_, ended, l, _, err := s.p.blob.state()
	switch {
	case !ended:
		return nil, stream.ErrNotComputed
	case err != nil:
		return nil, err
	}
	return l, nil
}

func (s streamed) Digest() (v1.Hash, error) {
	l, err := s.whole()
	if err != nil {
		return v1.Hash{}, err
	}
	return l.Digest()
}

func (s streamed) Size() (int64, error) {
	l, err := s.whole()
	if err != nil {
		return 0, err
	}
	return l.Size()
}

func (s streamed) Compressed() (io.ReadCloser, error)   { return s.p.blob.open() }
func (s streamed) DiffID() (v1.Hash, error)             { return s.p.DiffID() }
func (s streamed) Uncompressed() (io.ReadCloser, error) { return s.p.Uncompressed() }
func (s streamed) MediaType() (types.MediaType, error)  { return s.p.MediaType() }
