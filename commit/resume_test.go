package commit_test

import (
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stratabuild/strata/commit"
)

// dropServer is a registry whose answers to GET of one blob end early,
// the connection closed after half the blob, the first drops times.
type dropServer struct {
	registry http.Handler
	blob     []byte
	path     string // .../blobs/DIGEST
	drops    int32
	gets     atomic.Int32
}

func (s *dropServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, s.path) {
		s.registry.ServeHTTP(w, r)
		return
	}
	if s.gets.Add(1) > s.drops {
		s.registry.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(s.blob)))
	w.WriteHeader(http.StatusOK)
	w.Write(s.blob[:len(s.blob)/2])
	w.(http.Flusher).Flush()
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

// baseLayerFrom pushes busybox to a registry that drops the first drops
// fetches of its biggest layer, and returns that layer as pulled from it.
func baseLayerFrom(t *testing.T, drops int32) (v1.Layer, *dropServer) {
	t.Helper()
	img := pullBusybox(t)
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var big v1.Layer
	var bigSize int64
	for _, l := range ls {
		if size, _ := l.Size(); size > bigSize {
			big, bigSize = l, size
		}
	}
	rc, err := big.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	blob, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	dg, _ := big.Digest()
	s := &dropServer{registry: registry.New(registry.Logger(log.New(io.Discard, "", 0))), blob: blob, path: "/blobs/" + dg.String(), drops: drops}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	ref := strings.TrimPrefix(srv.URL, "http://") + "/strata/base:1"
	if _, err := commit.Push(t.Context(), img, tagsOf(t, []string{ref}), commit.RegistryOptions{}); err != nil {
		t.Fatal(err)
	}
	pulled, err := pullRef(t, ref, commit.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base, err := commit.BaseLayers(pulled)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range base {
		if d, _ := l.Digest(); d == dg {
			return l, s
		}
	}
	t.Fatalf("the pulled image has no layer %s", dg)
	return nil, nil
}

// TestFetchResumesLostConnection: a base layer whose connection drops in
// the middle of its blob is fetched again, and its content streams on
// as one: the blob is saved whole and its tar read whole.
func TestFetchResumesLostConnection(t *testing.T) {
	commit.SetFetchBackoff(t, 10*time.Millisecond)
	l, s := baseLayerFrom(t, 1)
	dir := t.TempDir()
	var tar bytes.Buffer
	saved, err := commit.StreamLayer(t.Context(), l, dir, func(r io.Reader) error {
		_, err := io.Copy(&tar, r)
		return err
	})
	if err != nil {
		t.Fatalf("StreamLayer with a connection lost once: %v", err)
	}
	if got := s.gets.Load(); got != 2 {
		t.Errorf("the blob was fetched %d times, want 2", got)
	}
	want, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	wantTar, err := io.ReadAll(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tar.Bytes(), wantTar) {
		t.Errorf("use got %d bytes of content, want the layer's %d", tar.Len(), len(wantTar))
	}
	f, err := os.Open(saved.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, s.blob) {
		t.Errorf("the saved blob has %d bytes, not the registry's %d", len(got), len(s.blob))
	}
}

// TestFetchConnectionLostEveryTime: a blob whose connection always drops
// fails as a lost connection, saying how far it got, and leaves nothing.
func TestFetchConnectionLostEveryTime(t *testing.T) {
	commit.SetFetchBackoff(t, 10*time.Millisecond)
	l, s := baseLayerFrom(t, 100)
	dir := t.TempDir()
	_, err := commit.StreamLayer(t.Context(), l, dir, func(r io.Reader) error {
		_, err := io.Copy(io.Discard, r)
		return err
	})
	want := "connection lost after " + strconv.Itoa(len(s.blob)/2) + " of " + strconv.Itoa(len(s.blob)) + " bytes (4 attempts)"
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "decompressing") {
		t.Errorf("StreamLayer = %v; want an error saying %q", err, want)
	}
	if got := s.gets.Load(); got != 4 {
		t.Errorf("the blob was fetched %d times, want 4", got)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left in the blob dir: %s", e.Name())
	}
}
