package commit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Compressor commits layers off the critical path of a build: the caller
// reads a layer's tar once to learn its diffID (what the next step's
// cache key chains on) and Adds it with a way to write the same tar again
// (a step's layer: its snapshot diffed again) — or, when nothing needs the
// diffID before the blob, Adds it unread and learns the diffID from the
// compression (see Add); the tar is compressed into its blob in the
// background (each layer on every core, see Compression; layersAtOnce
// layers at once), its diffID checked, and the job's then called, in the
// order added (to record the layer in a cache: only once its blob is
// whole). The blob is written as WriteLayer writes it — the same bytes as
// compressing the tar straight away — to a temp renamed into place once
// whole, so a build killed meanwhile leaves no blob named by a digest
// half-written (only a temp, which CleanBlobTemps removes).
type Compressor struct {
	dir string
	c   Compression

	// ctx is the jobs' lifetime, as errgroup.WithContext's: it ends
	// with the context NewCompressor was given, or at Close.
	ctx    context.Context
	cancel context.CancelFunc
	jobs   chan job
	worker sync.Once
	wg     sync.WaitGroup // the worker, the compressions and the thens
	queued sync.WaitGroup // the jobs added and not done

	mu  sync.Mutex
	err error // the first job's error
}

// job is a layer to compress (p) or, with p nil, what Then queued.
type job struct {
	p     *Pending
	tar   func(ctx context.Context, w io.Writer) error
	then  func(ctx context.Context, l *Layer, took time.Duration) error
	after func(ctx context.Context) error
	// compressed is closed once p's blob is written (or failed): its
	// then may run, after those of the jobs added before it.
	compressed chan struct{}
}

// layersAtOnce is how many layers are compressed at once. Each uses every
// core already; a second one overlaps the first one's reading, writing and
// syncing with its own compression (a step's incompressible data is mostly
// written and synced, not compressed), and the build's wait for its last
// layers is the longer one's, not their sum.
const layersAtOnce = 2

// NewCompressor returns a compressor writing blobs into dir with c. The
// jobs stop when ctx ends or Close is called.
func NewCompressor(ctx context.Context, dir string, c Compression) *Compressor {
	ctx, cancel := context.WithCancel(ctx)
	return &Compressor{dir: dir, c: c, ctx: ctx, cancel: cancel, jobs: make(chan job, 4096)}
}

// Pending is a layer whose tar is known — its diffID — and whose blob is
// being compressed. It is a v1.Layer whose methods other than DiffID and
// MediaType wait for the blob: call Wait first.
type Pending struct {
	// diffID is known from the start, or learned (learn) when the tar
	// is compressed: read it once known is closed.
	diffID v1.Hash
	learn  bool
	known  chan struct{}
	c      Compression
	blob   *growingBlob // followed by a streamed upload (Uploader.Add)
	what   string       // names the layer in errors: "the layer of FILE:LINE"

	done  chan struct{} // closed when layer or err is set
	layer *Layer
	err   error
	took  time.Duration
}

var _ v1.Layer = (*Pending)(nil)

// Add queues the compression of the layer whose tar has diffID: tar
// writes that tar to w (again; a tar of another diffID is an error, and
// no blob is named by it), with the compressor's context. A zero diffID
// is learned from the tar as it is compressed: DiffID waits for it. then,
// if not nil, is called with the blob once it is whole and how long
// compressing it took (in the background, with the compressor's
// context); its error is the layer's. what names the layer in errors
// ("the layer of strata.yaml:4"; "": "a step's layer"). Never call Add
// after Close.
func (q *Compressor) Add(what string, diffID v1.Hash, tar func(ctx context.Context, w io.Writer) error, then func(ctx context.Context, l *Layer, took time.Duration) error) *Pending {
	if what == "" {
		what = "a step's layer"
	}
	p := &Pending{diffID: diffID, learn: diffID == v1.Hash{}, known: make(chan struct{}), c: q.c, blob: newGrowingBlob(), done: make(chan struct{}), what: what}
	if !p.learn {
		close(p.known)
	}
	q.worker.Do(func() { q.wg.Add(1); go q.work() })
	q.queued.Add(1)
	q.jobs <- job{p: p, tar: tar, then: then}
	return p
}

// Then queues f to run in the background once the layers added before
// it are compressed and their thens have returned (a step that changed
// no file is recorded in a cache then, when its key chains on diffIDs
// learned by the compression), with the compressor's context; its error
// is the compressor's. Never call Then after Close.
func (q *Compressor) Then(f func(ctx context.Context) error) {
	q.worker.Do(func() { q.wg.Add(1); go q.work() })
	q.queued.Add(1)
	q.jobs <- job{after: f}
}

// work starts compressing the queued layers in the order added, at most
// layersAtOnce at once, until Close; thens calls their thens in that order.
func (q *Compressor) work() {
	defer q.wg.Done()
	slots := make(chan struct{}, layersAtOnce)
	ordered := make(chan job, cap(q.jobs))
	q.wg.Add(1)
	go q.thens(ordered)
	defer close(ordered)
	for j := range q.jobs {
		if j.p != nil {
			j.compressed = make(chan struct{})
			slots <- struct{}{}
			q.wg.Add(1)
			go func() {
				defer q.wg.Done()
				j.p.compress(q.ctx, q.dir, j.tar)
				<-slots
				close(j.compressed)
			}()
		}
		ordered <- j
	}
}

// thens calls, in the order added, the thens of the layers once each is
// compressed, and what Then queued once those before it are done.
func (q *Compressor) thens(ordered <-chan job) {
	defer q.wg.Done()
	for j := range ordered {
		if j.p == nil {
			q.fail(j.after(q.ctx))
			q.queued.Done()
			continue
		}
		<-j.compressed
		if j.p.err == nil && j.then != nil {
			j.p.err = j.then(q.ctx, j.p.layer, j.p.took)
		}
		q.fail(j.p.err)
		close(j.p.done)
		q.queued.Done()
	}
}

// fail keeps err if it is the first job's error.
func (q *Compressor) fail(err error) {
	if err == nil {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err == nil {
		q.err = err
	}
}

// Wait waits until every layer added is compressed and its then has
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

// compress writes p's blob from the tar that tar writes.
func (p *Pending) compress(ctx context.Context, dir string, tar func(ctx context.Context, w io.Writer) error) {
	start := time.Now()
	pr, pw := io.Pipe()
	written := make(chan struct{})
	go func() {
		defer close(written)
		pw.CloseWithError(tar(ctx, pw))
	}()
	var want v1.Hash // a learned diffID is any
	if !p.learn {
		want = p.diffID
	}
	l, err := writeLayer(ctx, pr, dir, p.c, want, p.blob)
	pr.CloseWithError(errReaderStopped) // stops tar if WriteLayer failed
	<-written
	if p.learn {
		defer close(p.known)
	}
	defer func() { p.blob.end(p.layer, p.err) }()
	switch {
	case err != nil && p.learn:
		p.err = fmt.Errorf("compressing %s: %w", p.what, err)
	case errors.Is(err, errDiffID):
		// No blob was named by the digest, nor is the layer recorded.
		p.err = fmt.Errorf("compressing %s (%s): its content changed before it was compressed (%w)", p.what, p.diffID, err)
	case err != nil:
		p.err = fmt.Errorf("compressing %s (%s): %w", p.what, p.diffID, err)
	case p.learn:
		p.diffID, p.layer, p.took = l.diffID, l, time.Since(start)
	default:
		p.layer, p.took = l, time.Since(start)
	}
}

// Close stops the jobs not done (they end with the context's error and
// leave nothing but what their then did) and waits for them. Call it once
// nothing adds any more.
func (q *Compressor) Close() {
	q.cancel()
	close(q.jobs)
	q.wg.Wait()
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

// DiffID is the sha256 of the tar: known from the start, or once the tar
// is compressed (it waits).
func (p *Pending) DiffID() (v1.Hash, error) { return p.WaitDiffID(context.Background()) }

// WaitDiffID is DiffID, waiting no longer than ctx: a diffID learned from
// the tar is known once its blob is written, before then is called (and
// before the thens of the layers added before it, which may still be
// compressed); if the compression failed, the error is the layer's.
func (p *Pending) WaitDiffID(ctx context.Context) (v1.Hash, error) {
	select {
	case <-p.known:
	case <-ctx.Done():
		return v1.Hash{}, ctx.Err()
	}
	if p.diffID != (v1.Hash{}) {
		return p.diffID, nil
	}
	select { // p.err is written until done
	case <-p.done:
		return v1.Hash{}, p.err
	case <-ctx.Done():
		return v1.Hash{}, ctx.Err()
	}
}

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
