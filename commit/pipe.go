package commit

import (
	"io"
	"sync"
)

// A chunkPipe is an io.Pipe with a buffer: Write copies into chunks of
// pipeChunk bytes and blocks only when pipeChunks of them wait to be
// read. With io.Pipe, whose Write waits until the reader has taken all it
// was given, a writer that decompresses and a reader that makes a file of
// each tar entry take turns; with the buffer they run at once.
type chunkPipe struct {
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

// Small chunks, so that the reader starts early: with 1 MiB ones, a
// base layer of 2 MiB (busybox) reached the extraction 9-12 ms after its
// first byte was fetched, 3-5 ms with these. The buffer stays 8 MiB.
const (
	pipeChunk  = 128 << 10
	pipeChunks = 64
)

func newChunkPipe() *chunkPipe {
	p := &chunkPipe{full: make(chan []byte, pipeChunks), free: make(chan []byte, pipeChunks+1), stop: make(chan struct{})}
	return p
}

func (p *chunkPipe) chunk() []byte {
	select {
	case b := <-p.free:
		return b[:0]
	default:
		return make([]byte, 0, pipeChunk)
	}
}

// Write buffers b; it fails once the reader is closed.
func (p *chunkPipe) Write(b []byte) (int, error) {
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

func (p *chunkPipe) send() error {
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
func (p *chunkPipe) CloseWrite(err error) {
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
func (p *chunkPipe) Read(b []byte) (int, error) {
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

func (p *chunkPipe) recycle(b []byte) {
	select {
	case p.free <- b[:0]:
	default:
	}
}

// CloseRead makes the writer's Writes fail with err from now on.
func (p *chunkPipe) CloseRead(err error) {
	p.once.Do(func() {
		p.mu.Lock()
		p.rerr = err
		p.mu.Unlock()
		close(p.stop)
	})
}
