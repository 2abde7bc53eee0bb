// Package bufpipe is an in-memory pipe with a bounded buffer, so that the
// goroutine writing a stream and the one reading it run at once.
package bufpipe

import (
	"errors"
	"io"
	"sync"
)

// A Pipe is an io.Pipe with a buffer: Write copies into chunks of Chunk
// bytes and blocks only when Chunks of them wait to be read. With
// io.Pipe, whose Write waits until the reader has taken all it was given,
// a writer that decompresses and a reader that makes a file of each tar
// entry take turns; with the buffer they run at once, on two cores. One
// goroutine writes and one reads.
type Pipe struct {
	size int         // of a chunk
	full chan []byte // chunks written, in order
	free chan []byte // chunks to reuse
	cur  []byte      // the writer's chunk being filled
	rbuf []byte      // the reader's chunk
	rd   []byte      // what is left of it
	stop chan struct{}

	once sync.Once
	mu   sync.Mutex
	werr error // set by CloseWrite: what Read returns after the last chunk
	rerr error // set by CloseRead: what Write returns
}

// New's buffer: Chunks chunks of Chunk bytes (8 MiB). Small chunks, so
// that the reader starts early: with 1 MiB ones, a base layer of 2 MiB
// (busybox) reached the extraction 9-12 ms after its first byte was
// fetched, 3-5 ms with these.
const (
	Chunk  = 128 << 10
	Chunks = 64
)

// New returns an empty pipe buffering Chunks chunks of Chunk bytes.
func New() *Pipe { return NewSize(Chunk, Chunks) }

// NewSize returns an empty pipe buffering n chunks of size bytes.
func NewSize(size, n int) *Pipe {
	return &Pipe{size: size, full: make(chan []byte, n), free: make(chan []byte, n+1), stop: make(chan struct{})}
}

func (p *Pipe) chunk() []byte {
	select {
	case b := <-p.free:
		return b[:0]
	default:
		return make([]byte, 0, p.size)
	}
}

// Write buffers b; it fails once the reader is closed.
func (p *Pipe) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		if p.cur == nil {
			p.cur = p.chunk()
		}
		c := copy(p.cur[len(p.cur):cap(p.cur)], b)
		p.cur, b, n = p.cur[:len(p.cur)+c], b[c:], n+c
		if len(p.cur) == cap(p.cur) {
			if err := p.send(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (p *Pipe) send() error {
	select {
	case p.full <- p.cur:
		p.cur = nil
		return nil
	case <-p.stop:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.rerr
	}
}

// CloseWrite flushes what is buffered; the reader then gets err, or
// io.EOF for nil.
func (p *Pipe) CloseWrite(err error) {
	if len(p.cur) > 0 && p.send() != nil {
		return
	}
	if err == nil {
		err = io.EOF
	}
	p.mu.Lock()
	p.werr = err
	p.mu.Unlock()
	close(p.full)
}

// Read reads what was written, then the writer's error.
func (p *Pipe) Read(b []byte) (int, error) {
	if len(p.rd) == 0 {
		if p.rbuf != nil {
			p.recycle(p.rbuf)
			p.rbuf = nil
		}
		var ok bool
		select {
		case p.rbuf, ok = <-p.full:
		case <-p.stop:
			return 0, io.ErrClosedPipe
		}
		if !ok {
			p.mu.Lock()
			defer p.mu.Unlock()
			return 0, p.werr
		}
		p.rd = p.rbuf
	}
	n := copy(b, p.rd)
	p.rd = p.rd[n:]
	return n, nil
}

// WriteTo writes what is written to w, a chunk at a time, until the
// writer closes; it returns the writer's error (nil for none), or w's.
// It does not close the read side: call CloseRead after it.
func (p *Pipe) WriteTo(w io.Writer) (int64, error) {
	var total int64
	if len(p.rd) > 0 { // left by a Read
		n, err := w.Write(p.rd)
		total += int64(n)
		p.rd = p.rd[n:]
		if err != nil {
			return total, err
		}
	}
	for {
		if p.rbuf != nil {
			p.recycle(p.rbuf)
			p.rbuf, p.rd = nil, nil
		}
		var ok bool
		select {
		case p.rbuf, ok = <-p.full:
		case <-p.stop:
			return total, io.ErrClosedPipe
		}
		if !ok {
			p.mu.Lock()
			defer p.mu.Unlock()
			if errors.Is(p.werr, io.EOF) {
				return total, nil
			}
			return total, p.werr
		}
		n, err := w.Write(p.rbuf)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
}

func (p *Pipe) recycle(b []byte) {
	select {
	case p.free <- b[:0]:
	default:
	}
}

// CloseRead makes the writer's Writes fail with err from now on.
func (p *Pipe) CloseRead(err error) {
	p.once.Do(func() {
		p.mu.Lock()
		p.rerr = err
		p.mu.Unlock()
		close(p.stop)
	})
}
