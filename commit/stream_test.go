package commit_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"

	"github.com/stratabuild/strata/commit"
)

// countedLayer counts how often, and how much of, a layer is read.
type countedLayer struct {
	v1.Layer
	opens, uncompressed atomic.Int32
	read                atomic.Int64
}

func (c *countedLayer) Compressed() (io.ReadCloser, error) {
	c.opens.Add(1)
	rc, err := c.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	return &countingReader{rc, &c.read}, nil
}

func (c *countedLayer) Uncompressed() (io.ReadCloser, error) {
	c.uncompressed.Add(1)
	return c.Layer.Uncompressed()
}

type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n.Add(int64(n))
	return n, err
}

// names lists a dir's entries.
func names(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

// TestStreamLayerOnePass: a base layer is fetched once, its blob saved
// and checked and its content given to use in that one read, never
// decompressed a second time; the diffID found is recorded beside the
// blob. The blob is named in the background: SaveBlob of the layer right
// after finds it there (it waits for the naming), without a second
// fetch.
func TestStreamLayerOnePass(t *testing.T) {
	content := testTar(t, map[string]string{"etc/motd": strings.Repeat("one pass\n", 5000)})
	base := baseLayers(t, baseWithConfig(t, []*commit.Layer{layerOf(t, content, commit.Gzip)}, func(*v1.ConfigFile) {}))[0]
	c := &countedLayer{Layer: base}
	blobs := t.TempDir()
	var got []byte
	var sum digest.Digest
	l, err := commit.StreamLayer(t.Context(), c, blobs, func(tar io.Reader) error {
		var err error
		got, err = io.ReadAll(tar)
		if h, ok := tar.(interface{ TarDigest() digest.Digest }); ok {
			sum = h.TarDigest()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content) {
		t.Errorf("use got %d bytes, not the layer's %d", len(got), len(content))
	}
	// Unpack takes the content's digest from its reader (a layers.HashedTar).
	if want := digest.FromBytes(content); sum != want {
		t.Errorf("the content's TarDigest once read = %q, want %s", sum, want)
	}
	saved, err := commit.SaveBlob(t.Context(), c, blobs)
	if err != nil {
		t.Fatalf("SaveBlob right after: %v", err)
	}
	if err := commit.WaitNamed(); err != nil {
		t.Errorf("WaitNamed: %v", err)
	}
	size, _ := base.Size()
	if c.opens.Load() != 1 || c.read.Load() != size || c.uncompressed.Load() != 0 {
		t.Errorf("the layer was opened %d times, %d of its %d bytes read, decompressed by others %d times; want 1, all, 0",
			c.opens.Load(), c.read.Load(), size, c.uncompressed.Load())
	}
	dg, _ := base.Digest()
	if want := []string{dg.Hex, dg.Hex + commit.DiffIDSuffix}; !slices.Equal(names(t, blobs), want) {
		t.Errorf("blob dir holds %v, want %v", names(t, blobs), want)
	}
	record, err := os.ReadFile(filepath.Join(blobs, dg.Hex+commit.DiffIDSuffix))
	if want := sha256Of(content).String() + "\n"; err != nil || string(record) != want {
		t.Errorf("diffID record = %q, %v; want %q", record, err, want)
	}
	if l.Path() != filepath.Join(blobs, dg.Hex) || saved.Path() != l.Path() {
		t.Errorf("layer at %s, saved at %s", l.Path(), saved.Path())
	}
}

// TestStreamLayerRefusals: a layer whose config lies about its diffID is
// refused with both diffIDs named even when use read it all and failed
// on its own (as Store.Unpack does on a diffID it did not expect); a use
// that fails halfway returns its error. Neither leaves anything in the
// blob dir.
func TestStreamLayerRefusals(t *testing.T) {
	ls := twoLayers(t)
	lying := baseLayers(t, baseWithConfig(t, ls, func(cf *v1.ConfigFile) { cf.RootFS.DiffIDs[0] = cf.RootFS.DiffIDs[1] }))[0]
	blobs := t.TempDir()
	_, err := commit.StreamLayer(t.Context(), lying, blobs, func(tar io.Reader) error {
		if _, err := io.Copy(io.Discard, tar); err != nil {
			return err
		}
		return errors.New("content has another diffID")
	})
	real, _ := ls[0].DiffID()
	claimed, _ := ls[1].DiffID()
	if err == nil || !strings.Contains(err.Error(), real.String()) || !strings.Contains(err.Error(), claimed.String()) {
		t.Errorf("StreamLayer of a lying layer = %v, want an error naming %s and %s", err, real, claimed)
	}
	if got := names(t, blobs); len(got) != 0 {
		t.Errorf("blob dir after a refused layer holds %v", got)
	}

	honest := baseLayers(t, baseWithConfig(t, []*commit.Layer{randomLayer(t, 8<<20)}, func(*v1.ConfigFile) {}))[0]
	halfway := errors.New("too big")
	_, err = commit.StreamLayer(t.Context(), honest, blobs, func(tar io.Reader) error {
		if _, err := io.CopyN(io.Discard, tar, 1<<20); err != nil {
			return err
		}
		return halfway
	})
	if !errors.Is(err, halfway) {
		t.Errorf("StreamLayer with a use failing halfway = %v, want %v", err, halfway)
	}
	if got := names(t, blobs); len(got) != 0 {
		t.Errorf("blob dir after a failed use holds %v", got)
	}
}

// TestSavedBlobDiffIDRecorded: a blob saved earlier is checked by its
// record, without reading it: in a new process (the record on disk, not
// the process's memory) an honest claim passes and a lying one fails.
func TestSavedBlobDiffIDRecorded(t *testing.T) {
	ls := twoLayers(t)
	blobs := t.TempDir()
	honest := baseLayers(t, baseWithConfig(t, ls, func(*v1.ConfigFile) {}))[0]
	if _, err := commit.SaveBlob(t.Context(), honest, blobs); err != nil {
		t.Fatal(err)
	}
	commit.ForgetVerified()
	c := &countedLayer{Layer: honest}
	if _, err := commit.SaveBlob(t.Context(), c, blobs); err != nil || c.opens.Load() != 0 {
		t.Errorf("SaveBlob of a saved blob: %v, the layer opened %d times; want nil, 0", err, c.opens.Load())
	}
	commit.ForgetVerified()
	lying := baseLayers(t, baseWithConfig(t, ls, func(cf *v1.ConfigFile) { cf.RootFS.DiffIDs[0] = cf.RootFS.DiffIDs[1] }))[0]
	if _, err := commit.SaveBlob(t.Context(), lying, blobs); err == nil || !strings.Contains(err.Error(), "claims") {
		t.Errorf("SaveBlob(saved blob, another diff_id) = %v, want a diff_id mismatch", err)
	}
}

// TestCleanBlobTemps: the temps of dead processes go, those of live ones
// and the blobs stay.
func TestCleanBlobTemps(t *testing.T) {
	blobs := t.TempDir()
	dead, live := strconv.Itoa(deadPid(t)), strconv.Itoa(os.Getpid())
	for _, n := range []string{".pending.tmp-" + dead + "-1", ".layer.tmp-" + dead + "-2", ".fetch.tmp-" + live + "-3", "0123abcd", "0123abcd.diffid"} {
		if err := os.WriteFile(filepath.Join(blobs, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := commit.CleanBlobTemps(blobs); err != nil {
		t.Fatal(err)
	}
	if got, want := names(t, blobs), []string{".fetch.tmp-" + live + "-3", "0123abcd", "0123abcd.diffid"}; !slices.Equal(got, want) {
		t.Errorf("after CleanBlobTemps: %v, want %v", got, want)
	}
}

// layerOf writes content as a layer compressed with c.
func layerOf(t testing.TB, content []byte, c commit.Compression) *commit.Layer {
	t.Helper()
	l, err := commit.WriteLayer(t.Context(), bytes.NewReader(content), t.TempDir(), c)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
