package layers

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

const tib = int64(1) << 40

// TestSparseBombRefusedWithBoundedDisk: a base layer of a few KiB holding a
// 1 TiB PAX sparse file (or a header declaring 1 TiB over a short stream)
// is refused from its header, within a second, under the default limits:
// the store's disk usage does not grow while it is read, the error names
// the entry and the flag that raises the limit, and the temp dir is gone.
func TestSparseBombRefusedWithBoundedDisk(t *testing.T) {
	requireOverlay(t)
	for name, layer := range map[string][]byte{
		"pax sparse 1 TiB":  sparseTar(t, "big.img", tib),
		"declared 1 TiB":    declaredTar(t, "big.img", tib),
		"after small files": append(withoutEnd(tarOf(t, dirE("etc/"), fileE("etc/os-release", "ID=x\n"))), sparseTar(t, "big.img", tib)...),
	} {
		t.Run(name, func(t *testing.T) {
			s := openStore(t)
			before := diskUsage(t, s.Root())
			// A guard for a regression: stop writing zeros after 3 s.
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			peak := watchDiskUsage(t, s.Root())
			start := time.Now()
			_, err := s.Unpack(ctx, digest.FromBytes(layer), bytes.NewReader(layer))
			took := time.Since(start)
			grown := peak() - before
			var lim *LimitError
			if !errors.As(err, &lim) || lim.Kind != LimitBytes || lim.Entry != "big.img" || lim.Limit != DefaultMaxLayerBytes {
				t.Fatalf("Unpack(%d-byte layer with a 1 TiB file) = %v, want a *LimitError of %s at big.img", len(layer), err, LimitBytes)
			}
			if !strings.Contains(err.Error(), "--max-layer-bytes") || !strings.Contains(err.Error(), "64 GiB") {
				t.Errorf("error %q does not name the limit and the flag that raises it", err)
			}
			if took > time.Second {
				t.Errorf("Unpack took %v to refuse the layer, want < 1s", took)
			}
			if grown > 1<<20 {
				t.Errorf("the store grew by %d bytes while unpacking, want < 1 MiB", grown)
			}
			if after := diskUsage(t, s.Root()); after != before {
				t.Errorf("store disk usage %d bytes before, %d after", before, after)
			}
			assertTmpEmpty(t, s)
		})
	}
}

// TestEntriesBombRefused: a layer with more entries than MaxEntries is
// refused at the first entry past it, reading no further.
func TestEntriesBombRefused(t *testing.T) {
	requireOverlay(t)
	s := openStore(t)
	s.SetLimits(Limits{MaxEntries: 1000})
	pr, pw := io.Pipe()
	var written atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() { // a million empty files, streamed
		tw := tar.NewWriter(pw)
		for i := range 1_000_000 {
			if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("f%07d", i), Typeflag: tar.TypeReg, Mode: 0o644}); err != nil {
				return // the reader gave up
			}
			written.Add(1)
		}
		pw.CloseWithError(tw.Close())
	})
	_, err := s.Unpack(t.Context(), digest.FromString("entries bomb"), pr)
	pr.Close()
	wg.Wait()
	var lim *LimitError
	if !errors.As(err, &lim) || lim.Kind != LimitEntries || lim.Limit != 1000 || lim.Entry != "f0001000" {
		t.Fatalf("Unpack(a million entries, MaxEntries 1000) = %v, want a *LimitError of %s at f0001000", err, LimitEntries)
	}
	if !strings.Contains(err.Error(), "--max-layer-entries") {
		t.Errorf("error %q does not name the flag that raises the limit", err)
	}
	if n := written.Load(); n > 100_000 {
		t.Errorf("%d entries were read, want the unpack stopped near 1000", n)
	}
	assertTmpEmpty(t, s)
}

// TestNormalLayerWithinLimits: limits refuse only what passes them — a
// layer of exactly MaxBytes and MaxEntries unpacks, one byte or one entry
// more does not; default limits leave an ordinary layer alone.
func TestNormalLayerWithinLimits(t *testing.T) {
	requireOverlay(t)
	layer := tarOf(t, dirE("etc/"), fileE("etc/a", strings.Repeat("a", 3000)), fileE("etc/b", strings.Repeat("b", 5000)),
		tarEntry{Name: "l", Type: tar.TypeSymlink, Mode: 0o777, Link: "etc/a"})
	for _, tc := range []struct {
		limits Limits
		want   LimitKind // "": unpacks
	}{
		{Limits{}, ""},
		{Limits{MaxBytes: -1, MaxEntries: -1}, ""},
		{Limits{MaxBytes: 8000, MaxEntries: 4}, ""},
		{Limits{MaxBytes: 7999}, LimitBytes},
		{Limits{MaxEntries: 3}, LimitEntries},
	} {
		t.Run(fmt.Sprintf("%+v", tc.limits), func(t *testing.T) {
			s := openStore(t)
			s.SetLimits(tc.limits)
			d := digest.FromBytes(layer)
			dir, err := s.Unpack(t.Context(), d, bytes.NewReader(layer))
			var lim *LimitError
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Unpack = %v, want success", err)
			case tc.want == "":
				if b, err := os.ReadFile(filepath.Join(dir, "etc/b")); err != nil || len(b) != 5000 {
					t.Errorf("etc/b = %d bytes, %v; want 5000", len(b), err)
				}
			case !errors.As(err, &lim) || lim.Kind != tc.want:
				t.Errorf("Unpack = %v, want a *LimitError of %s", err, tc.want)
			}
		})
	}
}

// TestLayerRefusedWhenStoreFilesystemFull: a layer that does not fit in
// the free space of the store's filesystem is refused before its data is
// written, with the space there was; one that fits unpacks.
func TestLayerRefusedWhenStoreFilesystemFull(t *testing.T) {
	requireOverlay(t)
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=8m"); err != nil {
		t.Fatalf("mounting a tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(root, unix.MNT_DETACH) })
	s, err := OpenStore(root, nil)
	must(t, err)
	big := tarOf(t, dirE("data/"), fileE("data/blob", strings.Repeat("x", 16<<20)))
	_, err = s.Unpack(t.Context(), digest.FromBytes(big), bytes.NewReader(big))
	var lim *LimitError
	if !errors.As(err, &lim) || lim.Kind != LimitFreeSpace || lim.Entry != "data/blob" || lim.Limit > 8<<20 {
		t.Fatalf("Unpack(16 MiB on an 8 MiB filesystem) = %v, want a *LimitError of %s at data/blob", err, LimitFreeSpace)
	}
	if u := diskUsage(t, root); u > 64<<10 {
		t.Errorf("the refused layer left %d bytes on the filesystem", u)
	}
	assertTmpEmpty(t, s)
	small := tarOf(t, fileE("blob", strings.Repeat("x", 4<<20)))
	if _, err := s.Unpack(t.Context(), digest.FromBytes(small), bytes.NewReader(small)); err != nil {
		t.Errorf("Unpack(4 MiB on an 8 MiB filesystem) = %v, want success", err)
	}
}

// sparseTar returns a tar holding one PAX (GNU 1.0) sparse file name of
// logical size size whose only data is its last 512 bytes, as GNU tar
// --sparse --format=pax writes it. archive/tar reads such a file as size
// bytes, holes as zeros; it cannot write one, so the blocks are made here.
func sparseTar(t testing.TB, name string, size int64) []byte {
	t.Helper()
	var recs strings.Builder
	for _, kv := range [][2]string{
		{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"},
		{"GNU.sparse.name", name}, {"GNU.sparse.realsize", strconv.FormatInt(size, 10)},
	} {
		recs.WriteString(paxRecord(kv[0], kv[1]))
	}
	sparseMap := pad(fmt.Sprintf("1\n%d\n512\n", size-512))
	data := pad(strings.Repeat("d", 512))
	var b bytes.Buffer
	b.Write(ustarHeader("./PaxHeaders/"+name, 'x', int64(recs.Len())))
	b.WriteString(pad(recs.String()))
	b.Write(ustarHeader("GNUSparseFile.0/"+name, '0', int64(len(sparseMap)+len(data))))
	b.WriteString(sparseMap + data)
	b.Write(make([]byte, 1024))
	tr := tar.NewReader(bytes.NewReader(b.Bytes()))
	if hdr, err := tr.Next(); err != nil || hdr.Name != name || hdr.Size != size {
		t.Fatalf("the hand-made sparse tar reads as %+v, %v; want %s of %d bytes", hdr, err, name, size)
	}
	return b.Bytes()
}

// declaredTar returns a tar whose one header declares a file of size
// bytes, followed by 512 bytes of data and the end of the stream.
func declaredTar(t testing.TB, name string, size int64) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	must(t, tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, Format: tar.FormatPAX}))
	_, err := tw.Write(make([]byte, 512))
	must(t, err)
	// No Flush: it would refuse the missing bytes. The stream ends here.
	return append(b.Bytes(), make([]byte, 1024)...)
}

// withoutEnd drops the two zero blocks that end a tar, so more entries can
// follow.
func withoutEnd(b []byte) []byte { return b[:len(b)-1024] }

func paxRecord(k, v string) string {
	rec := " " + k + "=" + v + "\n"
	n := len(rec)
	for n != len(strconv.Itoa(n))+len(rec) {
		n = len(strconv.Itoa(n)) + len(rec)
	}
	return strconv.Itoa(n) + rec
}

// pad pads s with NULs to a multiple of the tar block size.
func pad(s string) string {
	if r := len(s) % 512; r != 0 {
		s += strings.Repeat("\x00", 512-r)
	}
	return s
}

// ustarHeader returns a ustar header block.
func ustarHeader(name string, typ byte, size int64) []byte {
	h := make([]byte, 512)
	copy(h[0:100], name)
	copy(h[100:108], "0000644\x00")
	copy(h[108:116], "0000000\x00")
	copy(h[116:124], "0000000\x00")
	copy(h[124:136], fmt.Sprintf("%011o\x00", size))
	copy(h[136:148], fmt.Sprintf("%011o\x00", 1_000_000_000))
	h[156] = typ
	copy(h[257:265], "ustar\x0000")
	copy(h[148:156], "        ")
	var sum int64
	for _, c := range h {
		sum += int64(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return h
}

// diskUsage is what du reports for dir, in bytes.
func diskUsage(t testing.TB, dir string) int64 {
	t.Helper()
	out, err := exec.Command("du", "-s", "-B1", dir).Output()
	if err != nil {
		t.Fatalf("du %s: %v", dir, err)
	}
	n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	must(t, err)
	return n
}

// watchDiskUsage samples the disk usage of dir every 20 ms until the
// returned function is called; that returns the largest sample.
func watchDiskUsage(t testing.TB, dir string) (peak func() int64) {
	t.Helper()
	var max atomic.Int64
	max.Store(diskUsage(t, dir))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if out, err := exec.Command("du", "-s", "-B1", dir).Output(); err == nil {
				if n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64); err == nil && n > max.Load() {
					max.Store(n)
				}
			}
		}
	})
	return func() int64 {
		close(stop)
		wg.Wait()
		return max.Load()
	}
}

// TestLongNamesBombRefused: a layer of empty files with 4 KB paths, a few
// MB compressed, would make unpacking hold GBs of names: its names are
// bounded as NameBytesPerEntry for each entry MaxEntries allows, so it is
// refused with the flag that raises the bound.
func TestLongNamesBombRefused(t *testing.T) {
	requireOverlay(t)
	s := openStore(t)
	s.SetLimits(Limits{MaxEntries: 1000}) // names: 128,000 bytes
	long := strings.Repeat("d", 250) + "/" + strings.Repeat("e", 250) + "/" + strings.Repeat("f", 250) + "/"
	var hdrs []tarEntry
	for i := range 200 {
		hdrs = append(hdrs, fileE(fmt.Sprintf("%s%03d", long, i), ""))
	}
	layer := tarOf(t, hdrs...)
	_, err := s.Unpack(t.Context(), digest.FromBytes(layer), bytes.NewReader(layer))
	var lim *LimitError
	if !errors.As(err, &lim) || lim.Kind != LimitNames || lim.Limit != 1000*NameBytesPerEntry {
		t.Fatalf("Unpack(200 entries of 754-byte names, MaxEntries 1000) = %v, want a *LimitError of %s", err, LimitNames)
	}
	if !strings.Contains(err.Error(), "--max-layer-entries") {
		t.Errorf("error %q does not name the flag that raises the limit", err)
	}
	assertTmpEmpty(t, s)
}
