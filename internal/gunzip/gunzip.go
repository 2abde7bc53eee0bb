// Package gunzip inflates gzip streams: in an igzip process when igzip is
// installed, else in this process.
package gunzip

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/klauspost/compress/gzip"
)

// NewReader decompresses the gzip stream rc; closing the result closes rc.
//
// When the igzip program (Intel's ISA-L, Debian package isal) is on the
// PATH, the stream is inflated in an igzip process: on the 128 MB Debian
// base it takes 0.15 s of CPU where Go's inflate takes 0.39 s, and it runs
// beside this process's hashing and extraction (docs/benchmarks.md).
// Decompression has one right answer, so a well-formed stream gives the
// same content, and every digest of it, either way. igzip is the more
// lenient with a malformed one: it takes reserved header flags, where Go's
// reader refuses them. Both stop at the first bytes after a member that do
// not start another, ignoring them and all that follows (so that a blob
// with a trailing junk builds, or not, the same on every runner); a layer's
// content is checked against its diffID whichever reads it.
// STRATA_DISABLE_IGZIP=1, or no igzip, inflates with klauspost/compress in
// this process.
func NewReader(rc io.ReadCloser) (io.ReadCloser, error) {
	if path := igzipPath(); path != "" {
		return startIgzip(path, rc)
	}
	br := bufio.NewReader(rc)
	g, err := gzip.NewReader(br)
	if err != nil {
		return nil, err
	}
	g.Multistream(false)
	return &inProcess{z: g, br: br, rc: rc}, nil
}

// inProcess inflates in this process, a member at a time.
type inProcess struct {
	z    *gzip.Reader
	br   *bufio.Reader // the stream, read by z and by each member's header
	rc   io.Closer
	done bool
}

func (r *inProcess) Read(p []byte) (int, error) {
	for !r.done {
		n, err := r.z.Read(p)
		if !errors.Is(err, io.EOF) {
			return n, err
		}
		// A member ended: another follows, or the stream ends here, or
		// bytes that start no member do, which igzip ignores too.
		switch rerr := r.z.Reset(r.br); {
		case errors.Is(rerr, io.EOF) || errors.Is(rerr, gzip.ErrHeader):
			r.done = true
		case rerr != nil:
			return n, rerr
		default:
			r.z.Multistream(false)
		}
		if n > 0 {
			return n, nil
		}
	}
	return 0, io.EOF
}

func (r *inProcess) Close() error { return errors.Join(r.z.Close(), r.rc.Close()) }

// igzipPath is the igzip NewReader runs, or "" for the built-in inflate:
// looked up at each call (a few stats), so that the variable and the PATH
// of the moment decide.
func igzipPath() string {
	if os.Getenv("STRATA_DISABLE_IGZIP") == "1" {
		return ""
	}
	p, err := exec.LookPath("igzip")
	if err != nil {
		return ""
	}
	return p
}

// igzipReader reads what an igzip process inflates. A goroutine feeds it
// the compressed stream; the reader reports the end of the content only
// once that goroutine has stopped and the process has exited well, so the
// caller may then read what igzip left of the stream (it ignores what
// follows the last gzip member) without racing the feeder.
type igzipReader struct {
	cmd    *exec.Cmd
	out    io.ReadCloser
	src    io.ReadCloser
	stderr bytes.Buffer
	fed    chan struct{} // closed when the feeder has stopped
	feed   error         // what stopped it, if not the end
	done   bool
	err    error // sticky: the end (io.EOF) or what went wrong
}

func startIgzip(path string, rc io.ReadCloser) (io.ReadCloser, error) {
	r := &igzipReader{cmd: exec.Command(path, "-d", "-c"), src: rc, fed: make(chan struct{})}
	r.cmd.Stderr = &r.stderr
	stdin, in, err := pipe()
	if err != nil {
		return nil, err
	}
	out, stdout, err := pipe()
	if err != nil {
		stdin.Close()
		in.Close()
		return nil, err
	}
	r.cmd.Stdin, r.cmd.Stdout, r.out = stdin, stdout, out
	err = r.cmd.Start()
	stdin.Close() // igzip's ends: its own now
	stdout.Close()
	if err != nil {
		in.Close()
		out.Close()
		return nil, fmt.Errorf("starting igzip (STRATA_DISABLE_IGZIP=1 inflates in-process): %w", err)
	}
	go func() {
		r.feed = feed(in, rc)
		in.Close()
		close(r.fed)
	}()
	return r, nil
}

// pipe is os.Pipe with a buffer of pipeSize where the system allows it.
// With the default 64 KiB, the feeder, igzip and the reader take turns on
// every few chunks instead of running side by side: on the Debian base,
// pulled from a loopback registry, inflated and hashed, 0.53–0.58 s with
// 64 KiB pipes, 0.35–0.36 s with 1 MiB ones (docs/benchmarks.md).
func pipe() (r, w *os.File, err error) {
	if r, w, err = os.Pipe(); err != nil {
		return nil, nil, err
	}
	widen(w) // one pipe buffer: sized from either end
	return r, w, nil
}

// feed copies src to igzip's stdin until src ends. An error of src is
// returned; one writing to igzip is not: igzip stopped reading, at the
// end of the last member or on an error its exit status reports.
func feed(stdin io.Writer, src io.Reader) error {
	buf := make([]byte, 256<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := stdin.Write(buf[:n]); werr != nil {
				return nil
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (r *igzipReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.out.Read(p)
	if err == nil {
		return n, nil
	}
	if err != io.EOF {
		r.fail()
		r.err = err
		return n, err
	}
	r.err = r.finish()
	return n, r.err
}

// finish waits for the feeder and the process once igzip's output ended;
// it returns io.EOF if the stream was whole.
func (r *igzipReader) finish() error {
	<-r.fed
	ferr, werr := r.feed, r.cmd.Wait()
	r.out.Close()
	r.done = true
	switch {
	case ferr != nil:
		return ferr
	case werr != nil:
		msg := strings.TrimPrefix(strings.TrimSpace(r.stderr.String()), "igzip: ")
		if msg == "" {
			return fmt.Errorf("igzip: %w", werr)
		}
		// igzip names its input "file (null)" when it reads a pipe.
		msg = strings.ReplaceAll(strings.ReplaceAll(msg, "file (null)", "(null)"), "(null)", "the stream")
		return fmt.Errorf("igzip: %s", strings.Replace(msg, "Error ", "error ", 1))
	}
	return io.EOF
}

// fail stops the process and the feeder and waits for both.
func (r *igzipReader) fail() {
	if r.done {
		return
	}
	r.done = true
	_ = r.cmd.Process.Kill()
	r.out.Close()
	<-r.fed // it stops once the process is gone
	_ = r.cmd.Wait()
}

// Close stops igzip if it is still running and closes the stream.
func (r *igzipReader) Close() error {
	r.err = os.ErrClosed
	if !r.done {
		// Closing the source first unblocks a feeder waiting on it.
		cerr := r.src.Close()
		r.fail()
		return cerr
	}
	return r.src.Close()
}
