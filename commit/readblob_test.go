package commit

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"

	"github.com/stratabuild/strata/internal/testutil"
)

// The digest readBlob reports covers every byte of the blob, and its
// diffID the content: igzip (internal/gunzip) ignores bytes after the last
// gzip member, so the blob's digest counts them; the built-in inflate
// refuses them.
func TestReadBlobTrailingBytes(t *testing.T) {
	content := bytes.Repeat([]byte("layer content\n"), 5000)
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	if _, err := w.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	blob := append(gz.Bytes(), "trailing"...)
	t.Run("builtin", func(t *testing.T) {
		t.Setenv("STRATA_DISABLE_IGZIP", "1")
		if _, err := readBlob(context.Background(), bytes.NewReader(blob), &bytes.Buffer{}, types.OCILayer, nil); err == nil {
			t.Fatal("the built-in inflate took trailing bytes after the gzip stream")
		}
	})
	t.Run("igzip", func(t *testing.T) {
		testutil.Require(t, "igzip", func() error { _, err := exec.LookPath("igzip"); return err }, "apt-get install -y isal")
		t.Setenv("STRATA_DISABLE_IGZIP", "")
		var kept bytes.Buffer
		sums, err := readBlob(context.Background(), bytes.NewReader(blob), &kept, types.OCILayer, nil)
		if err != nil {
			t.Fatalf("readBlob: %v", err)
		}
		d, c := sha256.Sum256(blob), sha256.Sum256(content)
		want := blobSums{size: int64(len(blob))}
		want.digest.Algorithm, want.digest.Hex = "sha256", hex.EncodeToString(d[:])
		want.diffID.Algorithm, want.diffID.Hex = "sha256", hex.EncodeToString(c[:])
		if sums != want {
			t.Errorf("readBlob = %+v, want %+v", sums, want)
		}
		if !bytes.Equal(kept.Bytes(), blob) {
			t.Errorf("the blob written is %d bytes, want the %d read", kept.Len(), len(blob))
		}
	})
}

// stallingSource gives its bytes, then blocks until closed.
type stallingSource struct {
	r      io.Reader
	closed chan struct{}
	once   sync.Once
}

func (s *stallingSource) Read(p []byte) (int, error) {
	if n, _ := s.r.Read(p); n > 0 {
		return n, nil
	}
	<-s.closed
	return 0, errors.New("read on closed source")
}

func (s *stallingSource) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

// A use that fails while the source has stalled (a registry that stopped
// sending) ends readBlob: it closes the source rather than wait on it.
func TestReadBlobUseFailsOnStalledSource(t *testing.T) {
	random := make([]byte, 8<<20)
	rand.Read(random)
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(random)
	w.Close()
	refused := errors.New("use refused the content")
	for _, disable := range []string{"1", ""} {
		name := map[string]string{"1": "builtin", "": "igzip"}[disable]
		t.Run(name, func(t *testing.T) {
			if disable == "" {
				testutil.Require(t, "igzip", func() error { _, err := exec.LookPath("igzip"); return err }, "apt-get install -y isal")
			}
			t.Setenv("STRATA_DISABLE_IGZIP", disable)
			src := &stallingSource{r: bytes.NewReader(gz.Bytes()[:300<<10]), closed: make(chan struct{})}
			done := make(chan error, 1)
			go func() {
				_, err := readBlob(context.Background(), src, &bytes.Buffer{}, types.OCILayer, func(io.Reader) error {
					time.Sleep(300 * time.Millisecond) // the source has stalled by now
					return refused
				})
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, refused) {
					t.Errorf("readBlob = %v, want use's error", err)
				}
			case <-time.After(10 * time.Second):
				src.Close()
				t.Fatal("readBlob still waits on the stalled source after 10 s")
			}
		})
	}
}

// syncRecorder is a blob file that says when it was synced.
type syncRecorder struct {
	bytes.Buffer
	syncedAt []int // the length written at each Sync
}

func (s *syncRecorder) Sync() error {
	s.syncedAt = append(s.syncedAt, s.Len())
	return nil
}

// The blob is synced once, when all of it is written, with or without a
// use of its content.
func TestReadBlobSyncsBlob(t *testing.T) {
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(bytes.Repeat([]byte("content "), 100000))
	w.Close()
	uses := map[string]func(io.Reader) error{
		"no use":   nil,
		"with use": func(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err },
	}
	for name, use := range uses {
		t.Run(name, func(t *testing.T) {
			var blob syncRecorder
			if _, err := readBlob(context.Background(), bytes.NewReader(gz.Bytes()), &blob, types.OCILayer, use); err != nil {
				t.Fatal(err)
			}
			if want := []int{gz.Len()}; !slices.Equal(blob.syncedAt, want) {
				t.Errorf("synced with %v bytes written, want once with %v", blob.syncedAt, want)
			}
		})
	}
}
