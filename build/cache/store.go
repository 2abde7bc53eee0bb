package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stratabuild/strata/commit"
)

// Store keeps cached step results: the entry of each key and its layer.
type Store interface {
	// Get returns the hit for key, or nil when the store has none.
	Get(ctx context.Context, key string) (*Hit, error)
	// Put records e; layer is its committed layer, nil when the step
	// changed no file.
	Put(ctx context.Context, e *Entry, layer v1.Layer) error
	// String names the store in messages: "local", or the repository.
	String() string
}

// Hit is a cached result.
type Hit struct {
	Entry *Entry
	// Layer is nil when the step changed no file.
	Layer v1.Layer
	// From names the store that had it.
	From string
	// Remote is true for a hit from a --cache-from store.
	Remote bool
}

// Cache asks and fills the stores of one build.
type Cache struct {
	Local *Local
	// From are read after Local, in order (--cache-from).
	From []Store
	// To receive every step's result, run or hit (--cache-to).
	To  []Store
	Log *slog.Logger

	mu     sync.Mutex
	misses map[string][]string // key → why a From store's entry was no hit
	// unread are the From stores set aside (see Lookup): warned of once
	// and not asked again in the build.
	unread map[Store]bool
}

// Lookup finds key in the local store, then in each From store. A store
// that cannot be read is warned of, and the miss says so: a cache never
// fails a build that could run the step instead. One that refuses the
// credentials, whose certificate cannot be verified, or that does not
// answer in time (each step would wait as long) is not asked again in
// the build; after any other error (an entry that is not whole, a
// connection refused while a registry restarts) the next step asks it
// again.
func (c *Cache) Lookup(ctx context.Context, key string) (*Hit, error) {
	if h, err := c.Local.Get(ctx, key); err != nil || h != nil {
		return h, err
	}
	for _, s := range c.From {
		if c.isUnread(s) {
			c.noteMiss(key, fmt.Sprintf("--cache-from %s could not be read", s))
			continue
		}
		h, err := s.Get(ctx, key)
		var gone *LayerGoneError
		switch {
		case errors.As(err, &gone):
			c.noteMiss(key, gone.Error())
			continue
		case err != nil && ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil && (commit.AuthRefused(err) || commit.CertRefused(err) || timedOut(err)):
			c.setUnread(s, err)
			c.noteMiss(key, fmt.Sprintf("--cache-from %s could not be read", s))
			continue
		case err != nil:
			c.log().Warn("--cache-from "+s.String()+": the entry of a step could not be read; the step runs", "err", err)
			c.noteMiss(key, fmt.Sprintf("--cache-from %s: its entry could not be read", s))
			continue
		}
		if h != nil {
			h.Remote = true
			return h, nil
		}
	}
	return nil, nil
}

// CanHit reports whether a lookup could find anything: false when there
// is no --cache-from store and the local store holds no entry (a build
// on a fresh state root).
func (c *Cache) CanHit() bool { return len(c.From) > 0 || !c.Local.Empty() }

// Record stores a step's result locally and in every To store.
func (c *Cache) Record(ctx context.Context, e *Entry, layer v1.Layer) error {
	if err := c.Local.Put(ctx, e, layer); err != nil {
		return err
	}
	return c.Export(ctx, &Hit{Entry: e, Layer: layer})
}

// Export writes a hit to every To store, so that --cache-to holds the
// whole build, cached steps included.
func (c *Cache) Export(ctx context.Context, h *Hit) error {
	for _, s := range c.To {
		if err := s.Put(ctx, h.Entry, h.Layer); err != nil {
			return err
		}
	}
	return nil
}

// Explain says why in missed, from the local store's nearest entry for
// the same step, after what made a --cache-from entry for its key
// unusable (see LayerGoneError).
func (c *Cache) Explain(in *Inputs) string {
	why := Explain(in, c.Local.Nearest(in.StepID, in.Platform()))
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.misses[in.Key()]; len(m) > 0 {
		why = strings.Join(m, "; ") + "; " + why
	}
	return why
}

// timedOut reports whether err is a wait that ran out: a registry that
// accepted the connection and did not answer, or stopped sending.
func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

func (c *Cache) isUnread(s Store) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unread[s]
}

// setUnread marks s unreadable for err, warning of it the first time.
func (c *Cache) setUnread(s Store, err error) {
	c.mu.Lock()
	again := c.unread[s]
	if c.unread == nil {
		c.unread = map[Store]bool{}
	}
	c.unread[s] = true
	c.mu.Unlock()
	if !again {
		c.log().Warn("--cache-from "+s.String()+" cannot be read; the build goes on without it", "err", err)
	}
}

// noteMiss records why a --cache-from store that has key's entry could
// not give it, for Explain.
func (c *Cache) noteMiss(key, why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.misses == nil {
		c.misses = map[string][]string{}
	}
	c.misses[key] = append(c.misses[key], why)
}

func (c *Cache) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}
