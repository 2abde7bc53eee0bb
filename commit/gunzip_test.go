package commit

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"

	"github.com/stratabuild/strata/internal/testutil"
)

// decoders are the ways gunzip inflates: in this process, and in an
// igzip process when there is one (under STRATA_REQUIRE_PRIVILEGED=1,
// where CI installed it, there must be).
func decoders(t *testing.T) map[string]func() string {
	t.Helper()
	m := map[string]func() string{"builtin": func() string { return "" }}
	p, err := exec.LookPath("igzip")
	switch {
	case err == nil:
		m["igzip"] = func() string { return p }
	case os.Getenv(testutil.RequireEnv) == "1":
		t.Fatalf("igzip: %v (apt-get install -y isal); %s=1 forbids skipping its cases", err, testutil.RequireEnv)
	default:
		t.Logf("igzip: %v: only the built-in inflate is tested (apt-get install -y isal)", err)
	}
	return m
}

// withDecoder makes gunzip use path() for the rest of the test.
func withDecoder(t *testing.T, path func() string) {
	old := igzipPath
	igzipPath = path
	t.Cleanup(func() { igzipPath = old })
}

func gzipped(t *testing.T, parts ...[]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, p := range parts { // one member each
		w := gzip.NewWriter(&b)
		if _, err := w.Write(p); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func gunzipAll(blob []byte) ([]byte, error) {
	r, err := decompress(io.NopCloser(bytes.NewReader(blob)), types.OCILayer)
	if err != nil {
		return nil, err
	}
	got, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	return got, err
}

func TestGunzipDecodersAgree(t *testing.T) {
	text := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog\n", 40000))
	random := make([]byte, 3<<20)
	rand.Read(random)
	cases := []struct {
		name  string
		parts [][]byte
	}{
		{"one member", [][]byte{append(append([]byte{}, text...), random...)}},
		{"two members", [][]byte{text, random}},
		{"empty content", [][]byte{{}}},
	}
	for name, path := range decoders(t) {
		for _, c := range cases {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				withDecoder(t, path)
				got, err := gunzipAll(gzipped(t, c.parts...))
				if err != nil {
					t.Fatalf("gunzip: %v", err)
				}
				if want := bytes.Join(c.parts, nil); !bytes.Equal(got, want) {
					t.Errorf("gunzip gave %d bytes (sha256 %x), want %d (sha256 %x)", len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
				}
			})
		}
	}
}

func TestGunzipRefusesBadStreams(t *testing.T) {
	good := gzipped(t, bytes.Repeat([]byte("strata "), 10000))
	flip := func(i int) []byte { // i from the end
		b := bytes.Clone(good)
		b[len(b)-i] ^= 0xff
		return b
	}
	cases := map[string][]byte{
		"crc32 wrong":   flip(6),
		"size wrong":    flip(2),
		"truncated":     good[:len(good)/2],
		"not gzip":      []byte("this is not a gzip stream at all"),
		"deflate wrong": func() []byte { b := bytes.Clone(good); b[20] ^= 0xff; return b }(),
	}
	for name, path := range decoders(t) {
		for c, blob := range cases {
			t.Run(name+"/"+c, func(t *testing.T) {
				withDecoder(t, path)
				got, err := gunzipAll(blob)
				if err == nil {
					t.Fatalf("gunzip of a bad stream gave %d bytes and no error", len(got))
				}
				t.Logf("gunzip: %v", err)
			})
		}
	}
}

// The digest readBlob reports covers every byte of the blob, and its
// diffID the content, whichever decoder reads it: igzip ignores bytes
// after the last gzip member (so the blob's digest counts them), the
// built-in inflate refuses them.
func TestReadBlobTrailingBytes(t *testing.T) {
	content := bytes.Repeat([]byte("layer content\n"), 5000)
	blob := append(gzipped(t, content), "trailing"...)
	for name, path := range decoders(t) {
		t.Run(name, func(t *testing.T) {
			withDecoder(t, path)
			var kept bytes.Buffer
			sums, err := readBlob(context.Background(), bytes.NewReader(blob), &kept, types.OCILayer, nil)
			if name == "builtin" {
				if err == nil {
					t.Fatal("the built-in inflate took trailing bytes after the gzip stream")
				}
				return
			}
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
}

// Closing before the end stops igzip: no process is left, and Close does
// not wait for the rest of the stream.
func TestIgzipCloseEarly(t *testing.T) {
	testutil.Require(t, "igzip", func() error { _, err := exec.LookPath("igzip"); return err }, "apt-get install -y isal")
	withDecoder(t, decoders(t)["igzip"])
	random := make([]byte, 16<<20)
	rand.Read(random)
	pr, pw := io.Pipe()
	go func() { // a source that never ends
		w := gzip.NewWriter(pw)
		for {
			if _, err := w.Write(random); err != nil {
				return
			}
		}
	}()
	r, err := gunzip(pr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, 1<<20)); err != nil {
		t.Fatalf("reading the first MiB: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Close() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return in 10 s")
	}
	ir := r.(*igzipReader)
	if ir.cmd.ProcessState == nil {
		t.Fatal("igzip was not waited for")
	}
	if _, err := r.Read(make([]byte, 1)); err == nil {
		t.Error("Read after Close gave no error")
	}
}
