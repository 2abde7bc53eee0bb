package commit

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Compressor commits layers off the critical path of a build: Spool reads
// a layer's tar once, hashing its diffID (what the next step's cache key
// chains on) as it writes it to a temp file in the blob dir, and returns
// as soon as the tar is read; once queued, the tar is compressed into its
// blob in the background, one layer at a time in the order queued (each
// on every core, see Compression), the temp removed and the job's then
// called (to record the layer in a cache: only once its blob is whole).
// The blob is written as WriteLayer writes it — the same bytes as
// compressing the tar straight away — to a temp renamed into place once
// whole, so a build killed meanwhile leaves no blob named by a digest
// half-written (only temps, which CleanBlobTemps removes).
type Compressor struct {
	dir string
	c   Compression

	// ctx is the jobs' lifetime, as errgroup.WithContext's: it ends
	// with the context NewCompressor was given, or at Close.
	ctx    context.Context
	cancel context.CancelFunc
	jobs   chan job
	worker sync.Once
	wg     sync.WaitGroup // the worker
	queued sync.WaitGroup // the jobs queued and not done

	mu  sync.Mutex
	err error // the first job's error
}

type job struct {
	p    *Pending
	then func(ctx context.Context, l *Layer) error
}

// NewCompressor returns a compressor writing blobs into dir with c. The
// jobs stop when ctx ends or Close is called.
func NewCompressor(ctx context.Context, dir string, c Compression) *Compressor {
	ctx, cancel := context.WithCancel(ctx)
	return &Compressor{dir: dir, c: c, ctx: ctx, cancel: cancel, jobs: make(chan job, 4096)}
}

// Pending is a layer whose tar is known — its diffID and size — and whose
// blob is being compressed. It is a v1.Layer whose methods other than
// DiffID wait for the blob: call Wait first.
type Pending struct {
	tar    string // the spooled tar
	diffID v1.Hash
	size   int64 // of the tar
	c      Compression

	done  chan struct{} // closed when layer or err is set
	layer *Layer
	err   error
	took  time.Duration
}

var _ v1.Layer = (*Pending)(nil)

// Spool reads the layer tar r to its end into a temp file in the blob
// dir, hashing it. It returns once r is read; Queue or Discard the result.
// On error nothing is left.
func (q *Compressor) Spool(ctx context.Context, r io.Reader) (*Pending, error) {
	if _, err := q.c.MediaType(); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(q.dir, blobTempPattern("pending"))
	if err != nil {
		return nil, fmt.Errorf("spooling layer: %w", err)
	}
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	n, err := io.Copy(bw, ctxReader{ctx, r})
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("spooling layer: %w", err)
	}
	return &Pending{tar: f.Name(), diffID: sha256Hash(h), size: n, c: q.c, done: make(chan struct{})}, nil
}

// localOf is l as a blob written here: l itself, or the blob of a
// Pending compressed.
func localOf(l v1.Layer) (*Layer, bool) {
	switch l := l.(type) {
	case *Layer:
		return l, true
	case *Pending:
		if local := l.Layer(); local != nil {
			return local, true
		}
	}
	return nil, false
}

// Discard removes a spooled layer that is not to be queued.
func (p *Pending) Discard() {
	os.Remove(p.tar)
	p.err = errors.New("the layer was discarded")
	close(p.done)
}

// Queue queues p's compression; then, if not nil, is called with the blob
// once it is whole (in the background, with the compressor's context);
// its error is p's. Call Queue from the goroutine that spooled p, never
// after Close.
func (q *Compressor) Queue(p *Pending, then func(ctx context.Context, l *Layer) error) {
	q.worker.Do(func() { q.wg.Add(1); go q.work() })
	q.queued.Add(1)
	q.jobs <- job{p, then}
}

// work compresses the queued layers in order until Close.
func (q *Compressor) work() {
	defer q.wg.Done()
	for j := range q.jobs {
		j.p.compress(q.ctx, q.dir)
		if j.p.err == nil && j.then != nil {
			j.p.err = j.then(q.ctx, j.p.layer)
		}
		if j.p.err != nil {
			q.mu.Lock()
			if q.err == nil {
				q.err = j.p.err
			}
			q.mu.Unlock()
		}
		close(j.p.done)
		q.queued.Done()
	}
}

// Wait waits until every layer queued is compressed and its then has
// returned, or ctx ends; it returns the first job's error.
func (q *Compressor) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { q.queued.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err
}

// compress writes p's blob and removes the spooled tar.
func (p *Pending) compress(ctx context.Context, dir string) {
	defer os.Remove(p.tar)
	start := time.Now()
	f, err := os.Open(p.tar)
	if err != nil {
		p.err = fmt.Errorf("compressing layer %s: %w", p.diffID, err)
		return
	}
	defer f.Close()
	l, err := WriteLayer(ctx, f, dir, p.c)
	switch {
	case err != nil:
		p.err = err
	case l.diffID != p.diffID:
		// The temp was changed under us: never name a blob by a diffID
		// its content does not have.
		os.Remove(l.path)
		p.err = fmt.Errorf("compressing layer %s: its spooled tar changed (diffID %s)", p.diffID, l.diffID)
	default:
		p.layer, p.took = l, time.Since(start)
	}
}

// Close stops the jobs not done (they end with the context's error and
// leave nothing but what their then did) and waits for them. Call it once
// nothing spools or queues any more.
func (q *Compressor) Close() {
	q.cancel()
	close(q.jobs)
	q.wg.Wait()
}

// Wait waits for the blob and returns it, or why it could not be made.
func (p *Pending) Wait(ctx context.Context) (*Layer, error) {
	select {
	case <-p.done:
		return p.layer, p.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Layer is the blob, once Wait returned; nil before, or after an error.
func (p *Pending) Layer() *Layer {
	select {
	case <-p.done:
		return p.layer
	default:
		return nil
	}
}

// Took is how long the compression took: call it from the job's then, or
// after Wait.
func (p *Pending) Took() time.Duration { return p.took }

// TarSize is the size of the uncompressed tar.
func (p *Pending) TarSize() int64 { return p.size }

// DiffID is the sha256 of the tar; known when Spool returns.
func (p *Pending) DiffID() (v1.Hash, error) { return p.diffID, nil }

// MediaType is that of the compression the blob is written with.
func (p *Pending) MediaType() (types.MediaType, error) { return p.c.MediaType() }

// Digest waits for the blob and returns its digest.
func (p *Pending) Digest() (v1.Hash, error) {
	<-p.done
	if p.err != nil {
		return v1.Hash{}, p.err
	}
	return p.layer.Digest()
}

// Size waits for the blob and returns its size.
func (p *Pending) Size() (int64, error) {
	<-p.done
	if p.err != nil {
		return 0, p.err
	}
	return p.layer.Size()
}

// Compressed waits for the blob and opens it.
func (p *Pending) Compressed() (io.ReadCloser, error) {
	<-p.done
	if p.err != nil {
		return nil, p.err
	}
	return p.layer.Compressed()
}

// Uncompressed waits for the blob and opens its content.
func (p *Pending) Uncompressed() (io.ReadCloser, error) {
	<-p.done
	if p.err != nil {
		return nil, p.err
	}
	return p.layer.Uncompressed()
}
