package bufpipe

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// TestPipe: what is written in writes of any size is read back in
// order, in reads of any size, then the writer's error; once the reader
// closes, writes fail with its error.
func TestPipe(t *testing.T) {
	data := make([]byte, 5*Chunk+12345)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.IntN(256))
	}
	for _, werr := range []error{nil, errors.New("writer broke")} {
		p := New()
		go func() {
			rest := data
			for len(rest) > 0 {
				n := min(len(rest), 1+rng.IntN(3*Chunk/2))
				if _, err := p.Write(rest[:n]); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
				rest = rest[n:]
			}
			p.CloseWrite(werr)
		}()
		var got bytes.Buffer
		buf := make([]byte, 7777)
		var err error
		for {
			var n int
			n, err = p.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				break
			}
		}
		if !bytes.Equal(got.Bytes(), data) {
			t.Errorf("read %d bytes back, not the %d written", got.Len(), len(data))
		}
		if want := werr; want == nil && !errors.Is(err, io.EOF) || want != nil && !errors.Is(err, want) {
			t.Errorf("Read's last error = %v, want %v", err, werr)
		}
	}

	p := New()
	stopped := errors.New("reader stopped")
	p.CloseRead(stopped)
	var err error
	for i := 0; i < Chunks+2 && err == nil; i++ {
		_, err = p.Write(make([]byte, Chunk))
	}
	if !errors.Is(err, stopped) {
		t.Errorf("Write after CloseRead = %v, want %v", err, stopped)
	}
}

// TestWriteTo: io.Copy from a pipe takes what was written, whole chunks
// at a time, then returns nil (the writer closed without an error) or
// the writer's error; a failing destination's error is returned.
func TestWriteTo(t *testing.T) {
	data := make([]byte, 3*Chunk+777)
	for i := range data {
		data[i] = byte(i * 7)
	}
	broke := errors.New("writer broke")
	for _, werr := range []error{nil, broke} {
		p := NewSize(4096, 3)
		go func() {
			if _, err := p.Write(data); err != nil {
				t.Errorf("Write: %v", err)
			}
			p.CloseWrite(werr)
		}()
		var got bytes.Buffer
		if _, err := p.Read(make([]byte, 10)); err != nil { // WriteTo goes on from a Read
			t.Fatalf("Read: %v", err)
		}
		got.Write(data[:10])
		n, err := io.Copy(&got, p)
		if !errors.Is(err, werr) || werr == nil && err != nil {
			t.Errorf("io.Copy = %v, want %v", err, werr)
		}
		if n != int64(len(data)-10) || !bytes.Equal(got.Bytes(), data) {
			t.Errorf("io.Copy copied %d bytes, %d in all; want the %d written", n, got.Len(), len(data))
		}
	}

	p := NewSize(4096, 3)
	stop := errors.New("destination full")
	go func() {
		_, err := p.Write(data)
		p.CloseWrite(err)
	}()
	_, err := p.WriteTo(&failAfter{n: 5000, err: stop})
	p.CloseRead(err)
	if !errors.Is(err, stop) {
		t.Errorf("WriteTo to a failing writer = %v, want %v", err, stop)
	}
}

type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Write(b []byte) (int, error) {
	if len(b) > f.n {
		n := f.n
		f.n = 0
		return n, f.err
	}
	f.n -= len(b)
	return len(b), nil
}
