package commit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os/exec"
	"testing"

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
