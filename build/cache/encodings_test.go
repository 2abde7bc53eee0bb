package cache

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratabuild/strata/commit"
)

// layerTar is a one-file layer tar.
func layerTar(t *testing.T, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "f", Mode: 0o644, Size: int64(len(content))}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(content))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeEntry commits a layer of content as c into l's blobs and records
// an entry for it under step.
func writeEntry(t *testing.T, l *Local, step, content string, c commit.Compression) (*Entry, *commit.Layer) {
	t.Helper()
	layer, err := commit.WriteLayer(t.Context(), bytes.NewReader(layerTar(t, content)), l.blobs, c)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := LayerOf(layer, 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	in := baseInputs()
	in.Step = step
	e := &Entry{Key: in.Key(), Inputs: in, Layer: rec}
	if err := l.Put(t.Context(), e, layer); err != nil {
		t.Fatal(err)
	}
	return e, layer
}

// TestLayerCompressionRecorded: an entry records its blob's compression
// and level; one without a level is not known.
func TestLayerCompressionRecorded(t *testing.T) {
	l, err := OpenLocal(t.TempDir(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := commit.Compression{Codec: commit.CodecZstd, Level: 19}
	e, _ := writeEntry(t, l, "a", "alpha", want)
	h, err := l.Get(t.Context(), e.Key)
	if err != nil || h == nil {
		t.Fatalf("Get = %v, %v", h, err)
	}
	if got, ok := h.Entry.Layer.Compression(); !ok || got != want.Normalized() {
		t.Errorf("recorded compression = %v, %t; want %v", got, ok, want.Normalized())
	}
	old := *h.Entry.Layer
	old.Level = 0 // as entries written before levels were recorded
	if got, ok := old.Compression(); ok {
		t.Errorf("compression of a record without a level = %v, known; want not known", got)
	}
}

// TestEncodedRoundTripAndPrune: a re-encoded layer is found again by its
// diffID and compression, not for another compression; prune keeps it
// while its entry stays and removes it, and its blob, with the entry.
func TestEncodedRoundTripAndPrune(t *testing.T) {
	blobs := t.TempDir()
	l, err := OpenLocal(t.TempDir(), blobs)
	if err != nil {
		t.Fatal(err)
	}
	e, gz := writeEntry(t, l, "a", strings.Repeat("alpha ", 1000), commit.Gzip)
	zst := commit.Compression{Codec: commit.CodecZstd, Level: 5} // normalized: 3
	if got, _ := l.Encoded(e.Layer.DiffID, zst); got != nil {
		t.Fatalf("Encoded before any re-encoding = %s, want none", got.Path())
	}
	re, err := commit.Reencode(t.Context(), gz, blobs, zst)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := LayerOf(re, 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.PutEncoded(rec); err != nil {
		t.Fatalf("PutEncoded: %v", err)
	}
	got, gotRec := l.Encoded(e.Layer.DiffID, commit.Compression{Codec: commit.CodecZstd, Level: 3})
	if got == nil || got.Path() != re.Path() || gotRec.Digest != rec.Digest {
		t.Fatalf("Encoded(zstd level 3) = %v, %+v; want the re-encoded blob %s", got, gotRec, re.Path())
	}
	if got, _ := l.Encoded(e.Layer.DiffID, commit.Compression{Codec: commit.CodecZstd, Level: 19}); got != nil {
		t.Errorf("Encoded(zstd level 19) = %s, want none: only level 3 was made", got.Path())
	}
	if entries, err := l.Entries(); err != nil || len(entries) != 1 {
		t.Errorf("Entries = %d (%v), want 1: encodings are not entries", len(entries), err)
	}

	res, err := l.Prune(context.Background(), PruneOptions{}, noSnapshots{})
	if err != nil {
		t.Fatal(err)
	}
	if res.BlobsRemoved != 0 {
		t.Errorf("prune keeping every entry removed %d blobs, want 0", res.BlobsRemoved)
	}
	if got, _ := l.Encoded(e.Layer.DiffID, zst); got == nil {
		t.Error("prune keeping the entry dropped its re-encoded layer")
	}
	res, err = l.Prune(context.Background(), PruneOptions{KeepBytes: 1, LimitBytes: true}, noSnapshots{})
	if err != nil {
		t.Fatal(err)
	}
	if res.EntriesRemoved != 1 || res.BlobsRemoved != 2 {
		t.Errorf("prune of the entry: %+v, want 1 entry and 2 blobs (gzip and zstd) removed", res)
	}
	if got, _ := l.Encoded(e.Layer.DiffID, zst); got != nil {
		t.Error("the re-encoded layer of a pruned entry is still found")
	}
	if files, _ := os.ReadDir(filepath.Join(l.dir, encodingsDir)); len(files) != 0 {
		t.Errorf("%d encoding records left after prune, want 0", len(files))
	}
}
