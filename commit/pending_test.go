package commit_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stratabuild/strata/commit"
)

// TestCompressorSameBlobs: a layer spooled and compressed in the
// background is the blob WriteLayer makes of the same tar, for each codec;
// its diffID is known when Spool returns; then is called with the blob
// once it is whole, in the order queued; no temp is left.
func TestCompressorSameBlobs(t *testing.T) {
	tars := [][]byte{
		testTar(t, map[string]string{"etc/motd": strings.Repeat("background\n", 20000)}),
		testTar(t, map[string]string{"etc/a": "a", "etc/b": "b"}),
	}
	for _, c := range []commit.Compression{commit.Gzip, commit.Zstd, {Codec: commit.CodecGzip, Level: 9}} {
		t.Run(c.String(), func(t *testing.T) {
			blobs := t.TempDir()
			q := commit.NewCompressor(t.Context(), blobs, c)
			defer q.Close()
			var order []int
			var pending []*commit.Pending
			for i, tar := range tars {
				p, err := q.Spool(t.Context(), bytes.NewReader(tar))
				if err != nil {
					t.Fatal(err)
				}
				if d, _ := p.DiffID(); d != sha256Of(tar) || p.TarSize() != int64(len(tar)) {
					t.Errorf("spooled diffID %s, %d bytes; want %s, %d", d, p.TarSize(), sha256Of(tar), len(tar))
				}
				q.Queue(p, func(_ context.Context, l *commit.Layer) error {
					if _, err := os.Stat(l.Path()); err != nil {
						t.Errorf("then called before the blob is there: %v", err)
					}
					order = append(order, i)
					return nil
				})
				pending = append(pending, p)
			}
			if err := q.Wait(t.Context()); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(order, []int{0, 1}) {
				t.Errorf("then called in order %v", order)
			}
			for i, p := range pending {
				got, err := p.Wait(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				want := layerOf(t, tars[i], c)
				gd, _ := got.Digest()
				wd, _ := want.Digest()
				if gd != wd || got.Compression() != want.Compression() {
					t.Errorf("layer %d: background blob %s (%v), WriteLayer's %s (%v)", i, gd, got.Compression(), wd, want.Compression())
				}
				if pd, _ := p.Digest(); pd != gd {
					t.Errorf("Pending.Digest = %s, want %s", pd, gd)
				}
			}
			for _, n := range names(t, blobs) {
				if strings.HasPrefix(n, ".") {
					t.Errorf("temp %s left in the blob dir", n)
				}
			}
		})
	}
}

// TestCompressorStopped: Discard leaves nothing; Close before a big
// layer is compressed ends its job with an error, never calls its then,
// and leaves no blob and no temp.
func TestCompressorStopped(t *testing.T) {
	blobs := t.TempDir()
	q := commit.NewCompressor(t.Context(), blobs, commit.Compression{Codec: commit.CodecZstd, Level: 19})
	p, err := q.Spool(t.Context(), bytes.NewReader(testTar(t, map[string]string{"etc/x": "x"})))
	if err != nil {
		t.Fatal(err)
	}
	p.Discard()
	if got := names(t, blobs); len(got) != 0 {
		t.Errorf("blob dir after Discard holds %v", got)
	}

	data := make([]byte, 64<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	big, err := q.Spool(t.Context(), bytes.NewReader(testTar(t, map[string]string{"etc/big": string(data)})))
	if err != nil {
		t.Fatal(err)
	}
	called := false
	q.Queue(big, func(context.Context, *commit.Layer) error { called = true; return nil })
	q.Close()
	if _, err := big.Wait(t.Context()); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait after Close = %v, want context.Canceled", err)
	}
	if called {
		t.Error("then was called for a job stopped by Close")
	}
	if got := names(t, blobs); len(got) != 0 {
		t.Errorf("blob dir after Close holds %v", got)
	}
}
