package gunzip

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/stratabuild/strata/internal/testutil"
)

// decoders are the ways NewReader inflates, as the STRATA_DISABLE_IGZIP
// values that choose them: in this process, and in an igzip process when
// there is one (under STRATA_REQUIRE_PRIVILEGED=1, where CI installed it,
// there must be).
func decoders(t *testing.T) map[string]string {
	t.Helper()
	m := map[string]string{"builtin": "1"}
	_, err := exec.LookPath("igzip")
	switch {
	case err == nil:
		m["igzip"] = ""
	case os.Getenv(testutil.RequireEnv) == "1":
		t.Fatalf("igzip: %v (apt-get install -y isal); %s=1 forbids skipping its cases", err, testutil.RequireEnv)
	default:
		t.Logf("igzip: %v: only the built-in inflate is tested (apt-get install -y isal)", err)
	}
	return m
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
	r, err := NewReader(io.NopCloser(bytes.NewReader(blob)))
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
		// Bytes after the last member that start none: ignored by both.
		{"trailing junk", [][]byte{text, random, nil}},
	}
	for name, disable := range decoders(t) {
		for _, c := range cases {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				t.Setenv("STRATA_DISABLE_IGZIP", disable)
				blob := gzipped(t, c.parts...)
				if c.parts[len(c.parts)-1] == nil {
					blob = gzipped(t, c.parts[:len(c.parts)-1]...)
					blob = append(blob, "GARBAGEGARBAGE"...)
				}
				got, err := gunzipAll(blob)
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
	for name, disable := range decoders(t) {
		for c, blob := range cases {
			t.Run(name+"/"+c, func(t *testing.T) {
				t.Setenv("STRATA_DISABLE_IGZIP", disable)
				got, err := gunzipAll(blob)
				if err == nil {
					t.Fatalf("gunzip of a bad stream gave %d bytes and no error", len(got))
				}
				t.Logf("gunzip: %v", err)
			})
		}
	}
}

// Closing before the end stops igzip: no process is left, and Close does
// not wait for the rest of the stream.
func TestIgzipCloseEarly(t *testing.T) {
	testutil.Require(t, "igzip", func() error { _, err := exec.LookPath("igzip"); return err }, "apt-get install -y isal")
	t.Setenv("STRATA_DISABLE_IGZIP", "")
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
	r, err := NewReader(pr)
	if err != nil {
		t.Fatal(err)
	}
	ir, ok := r.(*igzipReader)
	if !ok {
		t.Fatalf("NewReader gave a %T, want igzip's reader", r)
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
	if ir.cmd.ProcessState == nil {
		t.Fatal("igzip was not waited for")
	}
	if _, err := r.Read(make([]byte, 1)); err == nil {
		t.Error("Read after Close gave no error")
	}
}

// failingSource gives its bytes, then fails with err.
type failingSource struct {
	r   io.Reader
	err error
}

func (s *failingSource) Read(p []byte) (int, error) {
	if n, _ := s.r.Read(p); n > 0 {
		return n, nil
	}
	return 0, s.err
}

// A source that fails at a member's end is an error, not the end of the
// content: even an error that wraps EPIPE, which igzip's feeder must not
// take for igzip having stopped reading.
func TestSourceErrorReported(t *testing.T) {
	broken := fmt.Errorf("reading the registry's response: %w", syscall.EPIPE)
	member := gzipped(t, bytes.Repeat([]byte("first member "), 1000))
	for name, disable := range decoders(t) {
		t.Run(name, func(t *testing.T) {
			t.Setenv("STRATA_DISABLE_IGZIP", disable)
			r, err := NewReader(io.NopCloser(&failingSource{r: bytes.NewReader(member), err: broken}))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if _, err := io.ReadAll(r); !errors.Is(err, syscall.EPIPE) {
				t.Errorf("reading a stream whose source failed: %v, want the source's error", err)
			}
		})
	}
}
