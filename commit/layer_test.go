package commit_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/stratabuild/strata/commit"
)

// testTar is a layer tar with a dir, a file, a symlink and a whiteout;
// files maps each file entry to its content.
func testTar(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	hdrs := []*tar.Header{{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755, ModTime: mtime}}
	for _, n := range names {
		hdrs = append(hdrs, &tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(files[n])), ModTime: mtime})
	}
	hdrs = append(hdrs,
		&tar.Header{Typeflag: tar.TypeSymlink, Name: "etc/link", Linkname: "motd", Mode: 0o777, ModTime: mtime},
		&tar.Header{Typeflag: tar.TypeReg, Name: "etc/.wh.gone", Mode: 0o600, ModTime: mtime},
	)
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.WriteString(tw, files[h.Name]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sha256Of(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

func TestWriteLayer(t *testing.T) {
	// Big enough to span many compressor blocks.
	big := strings.Repeat("strata layer content\n", 200_000)
	tarBytes := testTar(t, map[string]string{"etc/motd": "hello\n", "etc/big": big})
	for _, tc := range []struct {
		c       commit.Compression
		mt      types.MediaType
		tarFlag string
	}{
		{commit.Compression{}, types.OCILayer, "--gzip"},
		{commit.Gzip, types.OCILayer, "--gzip"},
		{commit.Compression{Codec: commit.CodecGzip, Level: 1}, types.OCILayer, "--gzip"},
		{commit.Compression{Codec: commit.CodecGzip, Level: 9}, types.OCILayer, "--gzip"},
		{commit.Zstd, types.OCILayerZStd, "--zstd"},
		{commit.Compression{Codec: commit.CodecZstd, Level: 19}, types.OCILayerZStd, "--zstd"},
	} {
		t.Run(tc.c.String(), func(t *testing.T) {
			dir := t.TempDir()
			l, err := commit.WriteLayer(t.Context(), bytes.NewReader(tarBytes), dir, tc.c)
			if err != nil {
				t.Fatalf("WriteLayer: %v", err)
			}
			blob, err := os.ReadFile(l.Path())
			if err != nil {
				t.Fatal(err)
			}
			diffID, _ := l.DiffID()
			digest, _ := l.Digest()
			size, _ := l.Size()
			mt, _ := l.MediaType()
			got := []any{diffID, digest, size, mt, filepath.Base(l.Path()), l.Compression()}
			want := []any{sha256Of(tarBytes), sha256Of(blob), int64(len(blob)), tc.mt, sha256Of(blob).Hex, tc.c.Normalized()}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("layer (diffID, digest, size, media type, file name, compression) (-want +got):\n%s", diff)
			}
			if len(blob) >= len(tarBytes)/10 {
				t.Errorf("blob is %d bytes for a %d-byte tar of repetitive text: not compressed?", len(blob), len(tarBytes))
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("dir holds %d entries, want only the blob", len(entries))
			}

			// GNU tar reads the blob.
			out, err := exec.Command("tar", tc.tarFlag, "-tvf", l.Path()).CombinedOutput()
			if err != nil {
				t.Fatalf("tar %s -tvf: %v\n%s", tc.tarFlag, err, out)
			}
			for _, name := range []string{"etc/motd", "etc/big", "etc/link -> motd", "etc/.wh.gone"} {
				if !strings.Contains(string(out), name) {
					t.Errorf("tar -tv output lacks %q:\n%s", name, out)
				}
			}

			// Uncompressed gives back the tar byte for byte.
			rc, err := l.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			back, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, tarBytes) {
				t.Errorf("Uncompressed() differs from the tar written (%d vs %d bytes)", len(back), len(tarBytes))
			}

			// OpenLayer on what was recorded gives the same layer.
			o, err := commit.OpenLayer(l.Path(), diffID, digest, size, mt)
			if err != nil {
				t.Fatalf("OpenLayer: %v", err)
			}
			od, _ := o.Digest()
			oi, _ := o.DiffID()
			if od != digest || oi != diffID {
				t.Errorf("OpenLayer digests = %v %v, want %v %v", od, oi, digest, diffID)
			}
		})
	}
}

func TestWriteLayerErrors(t *testing.T) {
	tarBytes := testTar(t, map[string]string{"etc/motd": "hello\n"})
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		r    io.Reader
		c    commit.Compression
	}{
		{"unknown compression", t.Context(), bytes.NewReader(tarBytes), commit.Compression{Codec: "lz4"}},
		{"cancelled", cancelled, bytes.NewReader(tarBytes), commit.Gzip},
		{"read error", t.Context(), io.MultiReader(bytes.NewReader(tarBytes[:1024]), errReader{}), commit.Zstd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if l, err := commit.WriteLayer(tc.ctx, tc.r, dir, tc.c); err == nil {
				t.Fatalf("WriteLayer = %s, want an error", l.Path())
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("dir holds %d entries after a failed write, want none", len(entries))
			}
		})
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestOpenLayerSizeMismatch(t *testing.T) {
	dir := t.TempDir()
	l, err := commit.WriteLayer(t.Context(), bytes.NewReader(testTar(t, nil)), dir, commit.Gzip)
	if err != nil {
		t.Fatal(err)
	}
	diffID, _ := l.DiffID()
	digest, _ := l.Digest()
	size, _ := l.Size()
	if _, err := commit.OpenLayer(l.Path(), diffID, digest, size+1, types.OCILayer); err == nil {
		t.Error("OpenLayer with a wrong size succeeded, want an error")
	}
}

// TestCompressionLevels: each gzip level is what the blob's encoder used —
// higher levels give smaller blobs of the same text, and gzip -d reads
// them — and levels outside a codec's range are refused.
func TestCompressionLevels(t *testing.T) {
	var text strings.Builder
	for i := range 100_000 {
		fmt.Fprintf(&text, "line %d: %x\n", i, sha256.Sum256([]byte{byte(i), byte(i >> 8)}))
	}
	tarBytes := testTar(t, map[string]string{"etc/text": text.String()})
	size := func(c commit.Compression) int64 {
		l, err := commit.WriteLayer(t.Context(), bytes.NewReader(tarBytes), t.TempDir(), c)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := l.Size()
		return n
	}
	gz1, gz9 := size(commit.Compression{Codec: commit.CodecGzip, Level: 1}), size(commit.Compression{Codec: commit.CodecGzip, Level: 9})
	if gz9 >= gz1 {
		t.Errorf("gzip level 9 blob is %d bytes, level 1 %d: want level 9 smaller", gz9, gz1)
	}
	zs1, zs19 := size(commit.Compression{Codec: commit.CodecZstd, Level: 1}), size(commit.Compression{Codec: commit.CodecZstd, Level: 19})
	if zs19 >= zs1 {
		t.Errorf("zstd level 19 blob is %d bytes, level 1 %d: want level 19 smaller", zs19, zs1)
	}
	for _, tc := range []struct {
		codec string
		level int
		want  commit.Compression // normalized; zero: an error
	}{
		{"gzip", 0, commit.Compression{Codec: commit.CodecGzip, Level: commit.DefaultGzipLevel}},
		{"gzip", 9, commit.Compression{Codec: commit.CodecGzip, Level: 9}},
		{"gzip", 10, commit.Compression{}},
		{"gzip", -1, commit.Compression{}},
		{"zstd", 0, commit.Compression{Codec: commit.CodecZstd, Level: 3}},
		{"zstd", 2, commit.Compression{Codec: commit.CodecZstd, Level: 1}},
		{"zstd", 5, commit.Compression{Codec: commit.CodecZstd, Level: 3}},
		{"zstd", 9, commit.Compression{Codec: commit.CodecZstd, Level: 6}},
		{"zstd", 22, commit.Compression{Codec: commit.CodecZstd, Level: 10}},
		{"zstd", 23, commit.Compression{}},
		{"lz4", 0, commit.Compression{}},
	} {
		c, err := commit.ParseCompression(tc.codec, tc.level)
		if (err != nil) != (tc.want == commit.Compression{}) {
			t.Errorf("ParseCompression(%q, %d) error = %v, want error: %t", tc.codec, tc.level, err, tc.want == commit.Compression{})
			continue
		}
		if got := c.Normalized(); err == nil && got != tc.want {
			t.Errorf("ParseCompression(%q, %d).Normalized() = %v, want %v", tc.codec, tc.level, got, tc.want)
		}
	}
}

// TestReencode: a gzip layer re-encoded as zstd keeps its diffID and
// content; a layer whose content is not what its diffID says is refused.
func TestReencode(t *testing.T) {
	tarBytes := testTar(t, map[string]string{"etc/motd": "hello\n"})
	dir := t.TempDir()
	gz, err := commit.WriteLayer(t.Context(), bytes.NewReader(tarBytes), dir, commit.Gzip)
	if err != nil {
		t.Fatal(err)
	}
	zs, err := commit.Reencode(t.Context(), gz, dir, commit.Zstd)
	if err != nil {
		t.Fatalf("Reencode: %v", err)
	}
	mt, _ := zs.MediaType()
	gzDiffID, _ := gz.DiffID()
	zsDiffID, _ := zs.DiffID()
	gzDigest, _ := gz.Digest()
	zsDigest, _ := zs.Digest()
	if mt != types.OCILayerZStd || zsDiffID != gzDiffID || zsDigest == gzDigest || zs.Compression() != commit.Zstd.Normalized() {
		t.Errorf("Reencode = %s, diffID %s, digest %s, %v; want zstd, diffID %s, a new digest", mt, zsDiffID, zsDigest, zs.Compression(), gzDiffID)
	}
	out, err := exec.Command("tar", "--zstd", "-tf", zs.Path()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "etc/motd") {
		t.Errorf("tar --zstd -tf of the re-encoded blob: %v\n%s", err, out)
	}

	// A layer that claims another diffID.
	size, _ := gz.Size()
	liar, err := commit.OpenLayer(gz.Path(), sha256Of([]byte("other")), gzDigest, size, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := commit.Reencode(t.Context(), liar, t.TempDir(), commit.Zstd); err == nil {
		t.Errorf("Reencode of a layer with a wrong diffID = %s, want an error", l.Path())
	}
}

// TestBlobsSameOnAnyCoreCount: the blob of a layer is the same bytes
// whatever the number of cores compressing it, for both codecs.
func TestBlobsSameOnAnyCoreCount(t *testing.T) {
	tar := testTar(t, map[string]string{"etc/motd": strings.Repeat("the same on any machine\n", 200000)})
	for _, c := range []commit.Compression{commit.Gzip, commit.Zstd} {
		var digests []v1.Hash
		for _, procs := range []int{1, 2, 4} {
			old := runtime.GOMAXPROCS(procs)
			l, err := commit.WriteLayer(t.Context(), bytes.NewReader(tar), t.TempDir(), c)
			runtime.GOMAXPROCS(old)
			if err != nil {
				t.Fatal(err)
			}
			d, _ := l.Digest()
			digests = append(digests, d)
		}
		if digests[0] != digests[1] || digests[0] != digests[2] {
			t.Errorf("%s: blobs with 1, 2 and 4 cores: %v", c, digests)
		}
	}
}
