package commit

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/stream"
)

// A follower reads a blob as it is written, through its rename, in the
// pieces written (WriteTo), and ends as the blob does: at its last byte
// once whole, with its error otherwise, even when every byte was read.
func TestFollowerEndsAsTheBlob(t *testing.T) {
	for _, whole := range []bool{true, false} {
		t.Run(map[bool]string{true: "whole", false: "failed"}[whole], func(t *testing.T) {
			dir := t.TempDir()
			g := newGrowingBlob()
			opened := make(chan io.ReadCloser)
			go func() { // before the file exists: open waits for it
				rc, err := g.open()
				if err != nil {
					t.Error(err)
				}
				opened <- rc
			}()
			tmp, err := os.Create(filepath.Join(dir, "tmp"))
			if err != nil {
				t.Fatal(err)
			}
			defer tmp.Close()
			g.begin(tmp.Name())
			rc := <-opened
			defer rc.Close()

			type result struct {
				b   []byte
				err error
			}
			got := make(chan result)
			go func() {
				var out bytes.Buffer
				_, err := rc.(io.WriterTo).WriteTo(&out)
				got <- result{out.Bytes(), err}
			}()
			want := make([]byte, 3<<20)
			rand.Read(want)
			w := &growingWriter{w: tmp, g: g}
			for i := 0; i < len(want); i += 1 << 20 {
				if _, err := w.Write(want[i : i+1<<20]); err != nil {
					t.Fatal(err)
				}
				time.Sleep(5 * time.Millisecond)
			}
			final := filepath.Join(dir, "blob")
			if err := g.rename(tmp.Name(), final); err != nil {
				t.Fatal(err)
			}
			late, err := g.open() // after the rename: the blob's name
			if err != nil {
				t.Fatal(err)
			}
			defer late.Close()
			select {
			case r := <-got:
				t.Fatalf("the reader ended before the blob did: %d bytes, %v", len(r.b), r.err)
			case <-time.After(50 * time.Millisecond):
			}
			var endErr error
			if !whole { // wrapping io.EOF, which is not an end
				endErr = fmt.Errorf("disk on fire: %w", io.EOF)
			}
			g.end(&Layer{path: final}, endErr)
			r := <-got
			switch {
			case whole && (r.err != nil || !bytes.Equal(r.b, want)):
				t.Errorf("read %d bytes (%v), want the %d written", len(r.b), r.err, len(want))
			case !whole && !errors.Is(r.err, endErr):
				t.Errorf("read %d bytes, ending with %v, want %v", len(r.b), r.err, endErr)
			}
			b, err := io.ReadAll(late)
			if whole != (err == nil) || whole && !bytes.Equal(b, want) {
				t.Errorf("a reader opened after the rename read %d bytes (%v)", len(b), err)
			}
		})
	}
}

// A blob that ends before its file exists gives its error to open.
func TestFollowerOfABlobNeverBegun(t *testing.T) {
	g := newGrowingBlob()
	g.end(nil, context.Canceled)
	if _, err := g.open(); !errors.Is(err, context.Canceled) {
		t.Errorf("open = %v, want %v", err, context.Canceled)
	}
}

// begunBlob is a growingBlob whose (empty) file exists.
func begunBlob(t *testing.T) *growingBlob {
	t.Helper()
	g := newGrowingBlob()
	tmp, err := os.Create(filepath.Join(t.TempDir(), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tmp.Close() })
	g.begin(tmp.Name())
	return g
}

// A bare io.EOF a blob ended with is not taken for its end; a layer's
// streamed view says the blob's error, not only "not computed".
func TestFollowerBlobErrors(t *testing.T) {
	g := begunBlob(t)
	s := streamed{p: &Pending{blob: g}}
	if _, err := s.Digest(); !errors.Is(err, stream.ErrNotComputed) {
		t.Errorf("Digest before the end = %v, want %v", err, stream.ErrNotComputed)
	}
	g.end(nil, io.EOF)
	rc, err := g.open()
	if err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("reading a blob that ended with io.EOF: %v, want %v", err, io.ErrUnexpectedEOF)
	}
	if _, err := s.Digest(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Digest after the end = %v, want the blob's error", err)
	}
	if _, err := s.Size(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Size after the end = %v, want the blob's error", err)
	}
}

// Closing a follower wakes a Read waiting for more.
func TestFollowerCloseWakesRead(t *testing.T) {
	g := begunBlob(t)
	rc, err := g.open()
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan error)
	go func() {
		_, err := rc.Read(make([]byte, 10))
		read <- err
	}()
	time.Sleep(20 * time.Millisecond)
	rc.Close()
	select {
	case err := <-read:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("Read after Close = %v, want %v", err, os.ErrClosed)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read still waits after Close")
	}
	g.end(nil, context.Canceled)
}
