package commit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// growingBlob is a layer's blob as WriteLayer writes it, for readers that
// follow it while it is written (a push's upload, see Uploader.Add):
// a reader gets what is written so far, waits for more, and reaches the
// end only once the blob is whole and checked, or gets the error that
// stopped it. So no reader ever takes a blob cut short for a whole one.
type growingBlob struct {
	begun chan struct{} // closed once the blob's file exists, or at end
	done  chan struct{} // closed at end

	mu    sync.Mutex
	path  string        // the file: the temp, then the blob's name
	n     int64         // bytes written so far
	wake  chan struct{} // closed, and replaced, at each write and at end
	layer *Layer        // the blob, once it ended whole
	err   error         // why it ended without a blob
}

func newGrowingBlob() *growingBlob {
	return &growingBlob{begun: make(chan struct{}), done: make(chan struct{}), wake: make(chan struct{})}
}

// begin is called once the blob's temp file at path is created.
func (g *growingBlob) begin(path string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.path = path
	close(g.begun)
}

// wrote is called after n more bytes are written to the file.
func (g *growingBlob) wrote(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n += int64(n)
	close(g.wake)
	g.wake = make(chan struct{})
}

// rename renames the file to path: under the lock a reader opens it
// with, so that it never opens a name just gone.
func (g *growingBlob) rename(from, path string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := os.Rename(from, path); err != nil {
		return err
	}
	g.path = path
	return nil
}

// end is called once, when the blob is whole and checked (l) or not made
// (err).
func (g *growingBlob) end(l *Layer, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.path == "" {
		close(g.begun)
	}
	if err == io.EOF { //nolint:errorlint // a reader's end: never a blob's error
		err = io.ErrUnexpectedEOF
	}
	g.layer, g.err = l, err
	close(g.wake)
	close(g.done)
}

// state is what a reader needs to know: the bytes written, whether the
// blob ended, the blob, what is closed at the next change, and why the
// blob ended without being made.
func (g *growingBlob) state() (n int64, ended bool, l *Layer, wake <-chan struct{}, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.done: // closed under the lock, with layer and err set
		ended = true
	default:
	}
	return g.n, ended, g.layer, g.wake, g.err
}

// open returns a reader of the blob from its start, following it as it
// is written: a blob that ended with an error gives that error, never
// io.EOF. It waits for the file to exist.
func (g *growingBlob) open() (io.ReadCloser, error) {
	<-g.begun
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return nil, g.err
	}
	// Opened under the lock: the file is renamed under it too.
	f, err := os.Open(g.path)
	if err != nil {
		return nil, fmt.Errorf("following a layer blob: %w", err)
	}
	return &follower{g: g, f: f, closed: make(chan struct{})}, nil
}

// follower reads a growingBlob from its start (see open).
type follower struct {
	g      *growingBlob
	f      *os.File
	off    int64
	closed chan struct{} // closed by Close: a Read waiting returns
	once   sync.Once
}

func (r *follower) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, ended, _, wake, err := r.g.state()
		switch {
		case err != nil:
			return 0, err
		case r.off < n:
			want := p[:min(int64(len(p)), n-r.off)]
			k, rerr := r.f.ReadAt(want, r.off)
			r.off += int64(k)
			switch {
			case k == len(want):
				rerr = nil
			case errors.Is(rerr, io.EOF): // shorter than written: never an end
				rerr = io.ErrUnexpectedEOF
			}
			return k, rerr
		case ended:
			return 0, io.EOF
		}
		select {
		case <-wake:
		case <-r.closed:
			return 0, os.ErrClosed
		}
	}
}

// Close closes the file; a Read waiting for more returns.
func (r *follower) Close() error {
	r.once.Do(func() { close(r.closed) })
	return r.f.Close()
}

// WriteTo writes the blob to w as it is written, each piece written since
// the last in one Write: an upload's body copies it in fewer, bigger
// chunks than its 32 KiB reads would make.
func (r *follower) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, 1<<20)
	var sum int64
	for {
		k, err := r.Read(buf)
		if k > 0 {
			wk, werr := w.Write(buf[:k])
			sum += int64(wk)
			if werr != nil {
				return sum, werr
			}
		}
		if err == io.EOF { //nolint:errorlint // Read's own end, never a blob's error (see end)
			return sum, nil
		}
		if err != nil {
			return sum, err
		}
	}
}
