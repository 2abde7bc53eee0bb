package commit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// fetchRetries is how many times a blob fetch whose connection is lost
// is started again, waiting fetchBackoff, then twice as long each time.
var (
	fetchRetries = 3
	fetchBackoff = time.Second
)

// resumingReader reads a blob of size bytes from open, and when the
// connection is lost before its end (the body ends early, the connection
// is reset or stalls), opens it again and skips what was read: its
// reader sees one stream. (ggcr's remote layer cannot be asked for a
// range; the bytes already read are fetched again and dropped.) After
// fetchRetries retries it fails with a *ConnLostError.
type resumingReader struct {
	ctx  context.Context
	open func() (io.ReadCloser, error)
	size int64 // -1 when unknown

	n     int64 // read so far
	tries int   // fetches started

	mu       sync.Mutex
	rc       io.ReadCloser
	closed   bool
	closedCh chan struct{} // closed by Close: no more waiting to retry
}

func newResumingReader(ctx context.Context, rc io.ReadCloser, size int64, open func() (io.ReadCloser, error)) *resumingReader {
	return &resumingReader{ctx: ctx, open: open, size: size, rc: rc, tries: 1, closedCh: make(chan struct{})}
}

func (r *resumingReader) Read(p []byte) (int, error) {
	for {
		r.mu.Lock()
		rc := r.rc
		r.mu.Unlock()
		n, err := rc.Read(p)
		r.n += int64(n)
		if errors.Is(err, io.EOF) && r.size >= 0 && r.n < r.size {
			err = io.ErrUnexpectedEOF
		}
		if err == nil || errors.Is(err, io.EOF) || !connLost(err) {
			return n, err
		}
		if rerr := r.reopen(err); rerr != nil {
			return n, rerr
		}
		if n > 0 {
			return n, nil
		}
	}
}

// reopen fetches the blob again after cause, up to its r.n-th byte.
func (r *resumingReader) reopen(cause error) error {
	for {
		if r.tries > fetchRetries {
			return &ConnLostError{Read: r.n, Size: r.size, Tries: r.tries, Err: cause}
		}
		wait := fetchBackoff << (r.tries - 1)
		r.tries++
		r.mu.Lock()
		closed := r.closed
		r.rc.Close()
		r.mu.Unlock()
		if closed {
			return cause
		}
		t := time.NewTimer(wait)
		select {
		case <-r.ctx.Done():
			t.Stop()
			return r.ctx.Err()
		case <-r.closedCh:
			t.Stop()
			return cause
		case <-t.C:
		}
		rc, err := r.open()
		if err != nil {
			cause = fmt.Errorf("fetching again: %w", err)
			if !connLost(err) {
				return &ConnLostError{Read: r.n, Size: r.size, Tries: r.tries, Err: cause}
			}
			continue
		}
		skipped, err := io.CopyN(io.Discard, rc, r.n)
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		r.mu.Lock()
		r.rc = rc
		closed = r.closed
		r.mu.Unlock()
		if closed {
			rc.Close()
			return cause
		}
		if err == nil {
			return nil
		}
		cause = fmt.Errorf("fetching again, after %d bytes: %w", skipped, err)
		if !connLost(err) {
			return &ConnLostError{Read: r.n, Size: r.size, Tries: r.tries, Err: cause}
		}
	}
}

// Close closes the fetch under way and stops retries.
func (r *resumingReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		close(r.closedCh)
	}
	return r.rc.Close()
}

// connLost reports whether err is a connection lost in the middle of an
// answer, which fetching again may cure.
func connLost(err error) bool {
	var (
		stalled *StalledError
		op      *net.OpError
	)
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.As(err, &stalled) || errors.As(err, &op)
}

// A ConnLostError is a blob fetch whose connection was lost every time.
type ConnLostError struct {
	Read, Size int64 // bytes read of the blob's Size (-1: unknown)
	Tries      int   // fetches started
	Err        error // the last failure
}

func (e *ConnLostError) Error() string {
	of := ""
	if e.Size >= 0 {
		of = fmt.Sprintf(" of %d", e.Size)
	}
	return fmt.Sprintf("connection lost after %d%s bytes (%d attempts): %v", e.Read, of, e.Tries, e.Err)
}

func (e *ConnLostError) Unwrap() error { return e.Err }
