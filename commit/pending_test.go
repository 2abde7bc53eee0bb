package commit_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stratabuild/strata/commit"
)

// writeTar is a Compressor job's tar: the bytes b.
func writeTar(b []byte) func(context.Context, io.Writer) error {
	return func(_ context.Context, w io.Writer) error {
		_, err := w.Write(b)
		return err
	}
}

// TestCompressorSameBlobs: a layer compressed in the background is the
// blob WriteLayer makes of the same tar, for each codec; then is called
// with the blob once it is whole, in the order added; no temp is left.
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
				p := q.Add("", sha256Of(tar), writeTar(tar), func(_ context.Context, l *commit.Layer, _ time.Duration) error {
					if _, err := os.Stat(l.Path()); err != nil {
						t.Errorf("then called before the blob is there: %v", err)
					}
					order = append(order, i)
					return nil
				})
				if d, _ := p.DiffID(); d != sha256Of(tar) {
					t.Errorf("Pending.DiffID = %s, want %s", d, sha256Of(tar))
				}
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

// TestCompressorRefusals: a tar that is not the diffID added (its source
// changed) fails its job and names no blob; Close before a big layer is
// compressed ends its job with an error. Neither calls then, nor leaves a
// blob or a temp.
func TestCompressorRefusals(t *testing.T) {
	blobs := t.TempDir()
	q := commit.NewCompressor(t.Context(), blobs, commit.Compression{Codec: commit.CodecZstd, Level: 19})
	called := false
	then := func(context.Context, *commit.Layer, time.Duration) error { called = true; return nil }
	a, b := testTar(t, map[string]string{"etc/x": "x"}), testTar(t, map[string]string{"etc/x": "y"})
	changed := q.Add("", sha256Of(a), writeTar(b), then)
	if _, err := changed.Wait(t.Context()); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Errorf("Wait for a tar of another diffID = %v, want an error", err)
	}
	if err := q.Wait(t.Context()); err == nil {
		t.Error("Compressor.Wait = nil after a failed job")
	}

	data := make([]byte, 64<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	bigTar := testTar(t, map[string]string{"etc/big": string(data)})
	big := q.Add("", sha256Of(bigTar), writeTar(bigTar), then)
	q.Close()
	if _, err := big.Wait(t.Context()); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait after Close = %v, want context.Canceled", err)
	}
	if called {
		t.Error("then was called for a failed job")
	}
	if got := names(t, blobs); len(got) != 0 {
		t.Errorf("blob dir holds %v, want nothing", got)
	}
}

// A layer whose tar changed to another layer's content leaves that
// layer's blob, of the same digest, where it is.
func TestCompressorChangedTarKeepsTheBlobThere(t *testing.T) {
	blobs := t.TempDir()
	a, b := testTar(t, map[string]string{"etc/x": "x"}), testTar(t, map[string]string{"etc/x": "y"})
	there, err := commit.WriteLayer(t.Context(), bytes.NewReader(b), blobs, commit.Gzip)
	if err != nil {
		t.Fatal(err)
	}
	q := commit.NewCompressor(t.Context(), blobs, commit.Gzip)
	defer q.Close()
	if _, err := q.Add("", sha256Of(a), writeTar(b), nil).Wait(t.Context()); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Errorf("Wait for a tar of another diffID = %v, want an error", err)
	}
	if _, err := os.Stat(there.Path()); err != nil {
		t.Errorf("the blob of the same digest: %v", err)
	}
}

// TestCompressorLearnsDiffID: a layer added with no diffID gets the tar's
// once compressed — DiffID waits for it, then sees it — and its blob is
// the one a layer added with its diffID gets; a failed one reports the
// failure from DiffID too.
func TestCompressorLearnsDiffID(t *testing.T) {
	blobs := t.TempDir()
	q := commit.NewCompressor(t.Context(), blobs, commit.Gzip)
	defer q.Close()
	tar := testTar(t, map[string]string{"etc/motd": strings.Repeat("learned\n", 50000)})
	release := make(chan struct{})
	p := q.Add("", v1.Hash{}, func(ctx context.Context, w io.Writer) error {
		<-release
		return writeTar(tar)(ctx, w)
	}, nil)
	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if d, err := p.WaitDiffID(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitDiffID before the tar is written = %s, %v; want it to wait", d, err)
	}
	close(release)
	d, err := p.DiffID()
	if err != nil || d != sha256Of(tar) {
		t.Errorf("DiffID = %s, %v; want %s", d, err, sha256Of(tar))
	}
	got, err := p.Wait(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	gd, _ := got.Digest()
	wd, _ := layerOf(t, tar, commit.Gzip).Digest()
	if gd != wd {
		t.Errorf("blob %s, WriteLayer's %s", gd, wd)
	}

	failed := q.Add("", v1.Hash{}, func(context.Context, io.Writer) error { return errors.New("the snapshot went away") }, nil)
	if _, err := failed.DiffID(); err == nil || !strings.Contains(err.Error(), "the snapshot went away") {
		t.Errorf("DiffID of a failed layer = %v, want its error", err)
	}
}

// TestCompressorOverlapsLayers: a layer is compressed while the one added
// before it still is (its tar blocked here) — its learned diffID is known
// — yet it is not done, and thens run in the order added, and a Then
// queued after both runs after both.
func TestCompressorOverlapsLayers(t *testing.T) {
	q := commit.NewCompressor(t.Context(), t.TempDir(), commit.Gzip)
	defer q.Close()
	var order []string
	then := func(name string) func(context.Context, *commit.Layer, time.Duration) error {
		return func(context.Context, *commit.Layer, time.Duration) error {
			order = append(order, name)
			return nil
		}
	}
	first := testTar(t, map[string]string{"etc/first": strings.Repeat("first\n", 10000)})
	second := testTar(t, map[string]string{"etc/second": "second"})
	release, wrote := make(chan struct{}), make(chan struct{})
	q.Add("", sha256Of(first), func(ctx context.Context, w io.Writer) error {
		<-release
		return writeTar(first)(ctx, w)
	}, then("first"))
	p := q.Add("", v1.Hash{}, func(ctx context.Context, w io.Writer) error {
		defer close(wrote)
		return writeTar(second)(ctx, w)
	}, then("second"))
	q.Then(func(context.Context) error {
		order = append(order, "then")
		return nil
	})
	select {
	case <-wrote:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("the second layer's tar was not read while the first one's was blocked")
	}
	if d, err := p.DiffID(); err != nil || d != sha256Of(second) {
		t.Errorf("the second layer's DiffID = %s, %v; want %s", d, err, sha256Of(second))
	}
	if l := p.Layer(); l != nil {
		t.Error("the second layer was done before the first")
	}
	close(release)
	if err := q.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if want := []string{"first", "second", "then"}; !slices.Equal(order, want) {
		t.Errorf("called in order %v, want %v", order, want)
	}
}

// TestCompressorOrderAndLimit: layers with known and learned diffIDs,
// their tars taking varied times, and Thens between them: every then and
// Then runs in the order added, a Then after every layer before it is
// done, and two tars are read at once, never more.
func TestCompressorOrderAndLimit(t *testing.T) {
	q := commit.NewCompressor(t.Context(), t.TempDir(), commit.Gzip)
	defer q.Close()
	var running, most atomic.Int32
	var order, want []int // order is only appended to by the thens, in turn
	var added []*commit.Pending
	for i := range 40 {
		want = append(want, i)
		if i%5 == 4 {
			before := slices.Clone(added)
			q.Then(func(context.Context) error {
				for _, p := range before {
					if p.Layer() == nil {
						return fmt.Errorf("Then %d ran before an earlier layer was done", i)
					}
				}
				order = append(order, i)
				return nil
			})
			continue
		}
		tar := testTar(t, map[string]string{fmt.Sprintf("f%d", i): strings.Repeat("x", 5000*i)})
		diffID := sha256Of(tar)
		if i%3 == 0 {
			diffID = v1.Hash{}
		}
		p := q.Add("", diffID, func(ctx context.Context, w io.Writer) error {
			n := running.Add(1)
			defer running.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(time.Duration(i%4) * 5 * time.Millisecond)
			return writeTar(tar)(ctx, w)
		}, func(context.Context, *commit.Layer, time.Duration) error {
			order = append(order, i)
			return nil
		})
		added = append(added, p)
	}
	if err := q.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(order, want) {
		t.Errorf("called in order %v, want %v", order, want)
	}
	if m := most.Load(); m != 2 {
		t.Errorf("at most %d tars read at once, want 2", m)
	}
}
