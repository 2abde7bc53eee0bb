package layers

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/internal/rootfs"
)

// tarOf builds a tar of entries, in order.
func tarOf(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Uid: e.UID, Gid: e.GID,
			Linkname: e.Link, Size: int64(len(e.Content)), ModTime: time.Unix(1e9, 0)}
		if e.Type != tar.TypeReg {
			hdr.Size = 0
		}
		for k, v := range e.Xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		if e.Dev != "" {
			fmt.Sscanf(e.Dev, "%d:%d", &hdr.Devmajor, &hdr.Devminor)
		}
		must(t, tw.WriteHeader(hdr))
		if hdr.Size > 0 {
			_, err := tw.Write([]byte(e.Content))
			must(t, err)
		}
	}
	must(t, tw.Close())
	return buf.Bytes()
}

func openStore(t testing.TB) *Store {
	t.Helper()
	s, err := OpenStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func unpack(t testing.TB, s *Store, b []byte) (digest.Digest, string) {
	t.Helper()
	d := digest.FromBytes(b)
	dir, err := s.Unpack(t.Context(), d, bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	return d, dir
}

// TestStackDiff unpacks a two-layer stack with a whiteout and an opaque dir,
// checks the snapshots hold overlay whiteouts, and diffs a step over it:
// paths hidden by the upper layer count as absent.
func TestStackDiff(t *testing.T) {
	requireOverlay(t)
	s := openStore(t)
	_, l1 := unpack(t, s, tarOf(t,
		dirE("etc/"), fileE("etc/a", "a"), fileE("etc/b", "b"),
		dirE("d/"), fileE("d/x", "x"), fileE("d/y", "y")))
	_, l2 := unpack(t, s, tarOf(t,
		dirE("etc/"), whE("etc/.wh.a"),
		dirE("d/"), whE("d/.wh..wh..opq"), fileE("d/z", "z")))

	var st unix.Stat_t
	must(t, unix.Lstat(filepath.Join(l2, "etc/a"), &st))
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("snapshot etc/a: mode %o rdev %d, want a 0/0 char device", st.Mode, st.Rdev)
	}
	if op, err := isOpaque(filepath.Join(l2, "d")); err != nil || !op {
		t.Errorf("snapshot d: opaque = %v, %v; want true", op, err)
	}

	lowers := []string{l2, l1}
	upper, merged := overlayRun(t, lowers, func(m string) {
		if _, err := os.Lstat(m + "/etc/a"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("merged etc/a: %v, want it whited out", err)
		}
		write(t, m+"/etc/a", "new a", 0o644) // absent below: an add
		write(t, m+"/d/x", "new x", 0o644)   // hidden by the opaque d: an add
		must(t, os.Remove(m+"/etc/b"))       // from l1: a whiteout
		must(t, os.Remove(m+"/d/z"))         // from l2: a whiteout
		write(t, m+"/etc/hosts", "", 0o644)  // skipped
	})
	skip := func(p string) bool { return p == "/etc/hosts" }
	tarball, stats := mustDiff(t, DiffOptions{Upper: upper, Lowers: lowers, Skip: skip})
	want := []tarEntry{
		dirE("d/"), fileE("d/x", "new x"), whE("d/.wh.z"),
		dirE("etc/"), fileE("etc/a", "new a"), whE("etc/.wh.b"),
	}
	if diff := cmp.Diff(want, readTar(t, tarball)); diff != "" {
		t.Errorf("Diff entries (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(DiffStats{Added: 2, Deleted: 2}, stats); diff != "" {
		t.Errorf("Diff stats (-want +got):\n%s", diff)
	}
	if _, err := os.Lstat(filepath.Join(upper, "etc/hosts")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("skipped etc/hosts still in the upper dir after Diff: %v", err)
	}
	delete(merged, "etc/hosts")
	_, again := overlayRun(t, append([]string{upper}, lowers...), func(string) {})
	if diff := cmp.Diff(merged, again); diff != "" {
		t.Errorf("upper as a lower (-merged +again):\n%s", diff)
	}
}

// TestDiffOpaqueOverNothing: an upper dir marked opaque (as the kernel does
// for renamed-in dirs) over a lower stack lacking it gets no opaque marker,
// and a whiteout of a path the lower stack lacks is left out.
func TestDiffOpaqueOverNothing(t *testing.T) {
	requireOverlay(t)
	lower, upper := t.TempDir(), t.TempDir()
	write(t, lower+"/other/f", "f", 0o644)
	write(t, upper+"/new/f", "f", 0o644)
	must(t, unix.Lsetxattr(upper+"/new", ovl().opaque, []byte("y"), 0))
	must(t, unix.Lsetxattr(upper+"/new/f", "trusted.overlay.origin", []byte("x"), 0))
	must(t, unix.Mknod(upper+"/gone", unix.S_IFCHR, 0)) // a whiteout of nothing
	tarball, _ := mustDiff(t, DiffOptions{Upper: upper, Lowers: []string{lower}})
	want := []tarEntry{dirE("new/"), fileE("new/f", "f")}
	if diff := cmp.Diff(want, readTar(t, tarball)); diff != "" {
		t.Errorf("Diff entries (-want +got):\n%s", diff)
	}
	if _, err := os.Lstat(upper + "/gone"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("whiteout of nothing still in the upper dir after Diff: %v", err)
	}
	for _, p := range []string{"new", "new/f"} {
		x, err := rootfs.Xattrs(filepath.Join(upper, p), func(n string) bool { return strings.HasPrefix(n, "trusted.") })
		if err != nil || len(x) != 0 {
			t.Errorf("upper %s keeps xattrs %v (%v) after Diff, want none", p, x, err)
		}
	}
}

// TestDiffDeterministic: same upper, same bytes; mtimes clamped to Epoch.
func TestDiffDeterministic(t *testing.T) {
	requireOverlay(t)
	lower, upper := t.TempDir(), t.TempDir()
	write(t, upper+"/new", "n", 0o644)
	write(t, upper+"/old", "o", 0o644)
	old := time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)
	must(t, os.Chtimes(upper+"/old", old, old))
	epoch := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	o := DiffOptions{Upper: upper, Lowers: []string{lower}, Epoch: &epoch, KeepUpper: true}
	a, _ := mustDiff(t, o)
	b, _ := mustDiff(t, o)
	if !bytes.Equal(a, b) {
		t.Error("two Diffs of the same upper dir differ")
	}
	tr := tar.NewReader(bytes.NewReader(a))
	got := map[string]time.Time{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		got[hdr.Name] = hdr.ModTime.UTC()
		if hdr.Format != tar.FormatUSTAR {
			t.Errorf("%s written as %v, want USTAR (no PAX needed)", hdr.Name, hdr.Format)
		}
	}
	if diff := cmp.Diff(map[string]time.Time{"new": epoch, "old": old}, got); diff != "" {
		t.Errorf("mtimes (-want +got):\n%s", diff)
	}
}

func TestUnpackRejectsWrongDiffID(t *testing.T) {
	requireOverlay(t)
	s := openStore(t)
	b := tarOf(t, fileE("f", "f"))
	wrong := digest.FromString("something else")
	if _, err := s.Unpack(t.Context(), wrong, bytes.NewReader(b)); err == nil {
		t.Fatal("Unpack with a wrong diffID succeeded")
	}
	if dir, ok := s.Lookup(wrong); ok {
		t.Errorf("Lookup(%s) = %s after a failed unpack, want no snapshot", wrong, dir)
	}
	assertTmpEmpty(t, s)
}

// hashedTar is a HashedTar that claims sum.
type hashedTar struct {
	io.Reader
	sum digest.Digest
}

func (h hashedTar) TarDigest() digest.Digest { return h.sum }

// TestUnpackHashedTar: the digest a HashedTar gives is the one Unpack
// checks against the diffID (it does not hash the stream again).
func TestUnpackHashedTar(t *testing.T) {
	requireOverlay(t)
	s := openStore(t)
	b := tarOf(t, fileE("a", "content"))
	d := digest.FromBytes(b)
	other := digest.FromString("other")
	if _, err := s.Unpack(t.Context(), d, hashedTar{bytes.NewReader(b), other}); err == nil || !strings.Contains(err.Error(), other.String()) {
		t.Errorf("Unpack of a HashedTar with digest %s = %v, want an error naming it", other, err)
	}
	if _, ok := s.Lookup(d); ok {
		t.Error("a refused unpack left a snapshot")
	}
	if _, err := s.Unpack(t.Context(), d, hashedTar{bytes.NewReader(b), d}); err != nil {
		t.Errorf("Unpack of a HashedTar with its own digest: %v", err)
	}
	assertTmpEmpty(t, s)
}

type failingReader struct {
	r io.Reader
	n int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection reset")
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestUnpackInterrupted(t *testing.T) {
	requireOverlay(t)
	s := openStore(t)
	b := tarOf(t, fileE("a", strings.Repeat("a", 4096)), fileE("b", strings.Repeat("b", 4096)))
	d := digest.FromBytes(b)
	if _, err := s.Unpack(t.Context(), d, &failingReader{r: bytes.NewReader(b), n: 5000}); err == nil {
		t.Fatal("Unpack of a cut-off stream succeeded")
	}
	if _, ok := s.Lookup(d); ok {
		t.Error("a cut-off unpack left a snapshot")
	}
	assertTmpEmpty(t, s)
	// A stale temp dir of a dead process is cleaned by the next OpenStore.
	stale := filepath.Join(s.Root(), "tmp", "unpack-123")
	write(t, stale+"/half", "x", 0o644)
	if _, err := OpenStore(s.Root(), nil); err != nil {
		t.Fatal(err)
	}
	assertTmpEmpty(t, s)
}

func assertTmpEmpty(t *testing.T, s *Store) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(s.Root(), "tmp"))
	must(t, err)
	if len(ents) != 0 {
		t.Errorf("store tmp holds %d entries, want none: %v", len(ents), ents[0].Name())
	}
}

type countingReader struct {
	r     io.Reader
	reads *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.r.Read(p)
}

// TestUnpackConcurrent: concurrent unpacks of one layer read it once and
// share one snapshot.
func TestUnpackConcurrent(t *testing.T) {
	requireOverlay(t)
	s := openStore(t)
	b := tarOf(t, fileE("f", strings.Repeat("x", 1<<20)))
	d := digest.FromBytes(b)
	var readers atomic.Int64
	var wg sync.WaitGroup
	dirs := make([]string, 6)
	for i := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var reads atomic.Int64
			dir, err := s.Unpack(t.Context(), d, countingReader{bytes.NewReader(b), &reads})
			if err != nil {
				t.Error(err)
			}
			if reads.Load() > 0 {
				readers.Add(1)
			}
			dirs[i] = dir
		}()
	}
	wg.Wait()
	if readers.Load() != 1 {
		t.Errorf("%d unpacks read the tar, want 1", readers.Load())
	}
	for _, dir := range dirs {
		if dir != dirs[0] {
			t.Errorf("snapshot dirs differ: %s vs %s", dir, dirs[0])
		}
	}
}

// TestCommit: a diffed upper dir becomes the snapshot by rename; a second
// upper with the same diffID is discarded (in the background, waited for
// by Close).
func TestCommit(t *testing.T) {
	requireOverlay(t)
	s := openStore(t)
	_, base := unpack(t, s, tarOf(t, dirE("etc/"), fileE("etc/a", "a")))
	step := func() (digest.Digest, string) {
		u, err := s.NewUpper(t.Context())
		must(t, err)
		target := t.TempDir()
		m, err := Mount(t.Context(), MountOptions{Lowers: []string{base}, Upper: u.Dir, Work: u.Work, Target: target})
		must(t, err)
		write(t, target+"/etc/b", "b", 0o644)
		must(t, m.Unmount())
		var buf bytes.Buffer
		_, err = Diff(t.Context(), &buf, DiffOptions{Upper: u.Dir, Lowers: []string{base}, Epoch: &time.Time{}})
		must(t, err)
		d := digest.FromBytes(buf.Bytes())
		dir, err := s.Commit(u, d)
		must(t, err)
		s.Close() // waits for a discard in the background
		if _, err := os.Stat(u.Dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("upper dir %s still exists after Commit and Close", u.Dir)
		}
		return d, dir
	}
	d1, dir1 := step()
	if got, ok := s.Lookup(d1); !ok || got != dir1 {
		t.Errorf("Lookup(%s) = %s, %v; want %s", d1, got, ok, dir1)
	}
	if b, err := os.ReadFile(filepath.Join(dir1, "etc/b")); err != nil || string(b) != "b" {
		t.Errorf("committed snapshot etc/b = %q, %v", b, err)
	}
	d2, dir2 := step()
	if d2 != d1 || dir2 != dir1 {
		t.Errorf("second identical step: %s at %s, want %s at %s", d2, dir2, d1, dir1)
	}
	assertTmpEmpty(t, s)
}

// TestMountManyLayers: 150 lower dirs with long paths, far past the one
// page mount(2) accepts.
func TestMountManyLayers(t *testing.T) {
	requireOverlay(t)
	base := filepath.Join(t.TempDir(), strings.Repeat("p", 60))
	var lowers []string
	want := map[string]bool{}
	for i := range 150 {
		l := filepath.Join(base, fmt.Sprintf("layer-%03d", i))
		write(t, fmt.Sprintf("%s/f%03d", l, i), "x", 0o644)
		lowers = append(lowers, l)
		want[fmt.Sprintf("f%03d", i)] = true
	}
	got := map[string]bool{}
	overlayRun(t, lowers, func(m string) {
		ents, err := os.ReadDir(m)
		must(t, err)
		for _, e := range ents {
			got[e.Name()] = true
		}
	})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("merged view of 150 layers (-want +got):\n%s", diff)
	}
}

// TestMountOneLayerTwice: an image may list one layer twice, whose
// snapshot is one dir; overlay refuses a lower dir twice (ELOOP). Mounted
// with it at both places, the merged view is that of the dir at its top
// place only: the layer between them deletes a file of it, makes a dir of
// it opaque and adds files, and the layer's own whiteout hides one of
// those.
func TestMountOneLayerTwice(t *testing.T) {
	requireOverlay(t)
	base := t.TempDir()
	a, b := base+"/a", base+"/b"
	write(t, a+"/f", "a", 0o644)
	write(t, a+"/d/x", "a", 0o644)
	must(t, unix.Mknod(a+"/w", unix.S_IFCHR, 0)) // hides b's w
	write(t, b+"/d/y", "b", 0o644)
	must(t, unix.Mknod(b+"/f", unix.S_IFCHR, 0)) // deletes a's f
	must(t, unix.Setxattr(b+"/d", "trusted.overlay.opaque", []byte("y"), 0))
	write(t, b+"/g", "b", 0o644)
	write(t, b+"/w", "b", 0o644)
	_, want := overlayRun(t, []string{a, b}, func(string) {})
	_, got := overlayRun(t, []string{a, b, a}, func(string) {})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("merged view of a, b, a against a, b (-want +got):\n%s", diff)
	}
	if _, ok := got["f"]; !ok {
		t.Error("the layer's file is not in the merged view; the test proves nothing")
	}
}

// TestMountStaysUntilUnmount: cancelling the context does not unmount
// behind the caller's back (a runtime still starting in the mount would
// then write into the bare target dir); Unmount does, once.
func TestMountStaysUntilUnmount(t *testing.T) {
	requireOverlay(t)
	base := t.TempDir()
	for _, d := range []string{"l", "u", "w", "m"} {
		mkdir(t, filepath.Join(base, d), 0o755)
	}
	ctx, cancel := context.WithCancel(t.Context())
	m, err := Mount(ctx, MountOptions{Lowers: []string{base + "/l"}, Upper: base + "/u", Work: base + "/w", Target: base + "/m"})
	must(t, err)
	write(t, base+"/m/f", "f", 0o644)
	cancel()
	time.Sleep(50 * time.Millisecond)
	if !isMountPoint(t, base+"/m") {
		t.Fatal("unmounted by the context's cancellation")
	}
	if err := m.Unmount(); err != nil {
		t.Errorf("Unmount: %v", err)
	}
	if isMountPoint(t, base+"/m") {
		t.Error("still mounted after Unmount")
	}
	if err := m.Unmount(); err != nil {
		t.Errorf("second Unmount: %v", err)
	}
}

func isMountPoint(t *testing.T, p string) bool {
	var a, b unix.Stat_t
	must(t, unix.Stat(p, &a))
	must(t, unix.Stat(filepath.Dir(p), &b))
	return a.Dev != b.Dev
}

// TestScratchStep: a step over no lowers mounts, and everything is added.
func TestScratchStep(t *testing.T) {
	requireOverlay(t)
	s := openStore(t)
	u, err := s.NewUpper(t.Context())
	must(t, err)
	defer u.Discard()
	target := t.TempDir()
	m, err := Mount(t.Context(), MountOptions{Upper: u.Dir, Work: u.Work, Target: target})
	must(t, err)
	write(t, target+"/bin/sh", "sh", 0o755)
	must(t, m.Unmount())
	tarball, stats := mustDiff(t, DiffOptions{Upper: u.Dir})
	want := []tarEntry{dirE("bin/"), {Name: "bin/sh", Type: tar.TypeReg, Mode: 0o755, Content: "sh"}}
	if diff := cmp.Diff(want, readTar(t, tarball)); diff != "" {
		t.Errorf("Diff entries (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(DiffStats{Added: 2}, stats); diff != "" {
		t.Errorf("Diff stats (-want +got):\n%s", diff)
	}
	must(t, u.Discard())
	assertTmpEmpty(t, s)
}

// TestMountLegacy: the mount(2) fallback stacks lowers top first, with
// paths that need escaping.
func TestMountLegacy(t *testing.T) {
	requireOverlay(t)
	base := t.TempDir()
	top, bottom := base+"/top,a:b", base+"/bottom"
	write(t, top+"/f", "top", 0o644)
	write(t, bottom+"/f", "bottom", 0o644)
	write(t, bottom+"/g", "g", 0o644)
	for _, d := range []string{"u", "w", "m"} {
		mkdir(t, filepath.Join(base, d), 0o755)
	}
	o := MountOptions{Lowers: []string{top, bottom}, Upper: base + "/u", Work: base + "/w", Target: base + "/m"}
	must(t, mountLegacy(o.Lowers, o))
	defer unix.Unmount(o.Target, 0)
	got := map[string]string{}
	for _, f := range []string{"f", "g"} {
		b, err := os.ReadFile(filepath.Join(o.Target, f))
		must(t, err)
		got[f] = string(b)
	}
	if diff := cmp.Diff(map[string]string{"f": "top", "g": "g"}, got); diff != "" {
		t.Errorf("legacy mount (-want +got):\n%s", diff)
	}
}
