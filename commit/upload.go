package commit

import (
	"context"
	"log/slog"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Uploader uploads layers to the repositories an image is to be pushed to
// while the build still runs, each as soon as its blob is whole, so that
// the push at the end finds them there (Push asks before it uploads) and
// only puts what is left: the config and the manifest. An upload that
// fails is only logged: the push tries again and reports.
type Uploader struct {
	ctx   context.Context
	repos []name.Repository
	o     RegistryOptions
	log   *slog.Logger
	slots chan struct{} // one per upload running at once

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
	return u
}

// Add starts uploading l, in the background, to every repository. A nil
// Uploader, or one whose Wait has been called, does nothing.
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
			select {
			case u.slots <- struct{}{}:
				defer func() { <-u.slots }()
			case <-u.ctx.Done():
				return
			}
			if err := remote.WriteLayer(repo, l, RemoteOptions(u.ctx, u.o)...); err != nil {
				dg, _ := l.Digest()
				u.log.Debug("uploading a layer before the push", "repo", repo, "layer", dg, "err", err)
			}
		})
	}
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
