package commit

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
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
			if !whole {
				endErr = errors.New("disk on fire")
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
