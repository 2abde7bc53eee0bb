package layers

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func dirE(name string) tarEntry { return tarEntry{Name: name, Type: tar.TypeDir, Mode: 0o755} }
func fileE(name, content string) tarEntry {
	return tarEntry{Name: name, Type: tar.TypeReg, Mode: 0o644, Content: content}
}
func whE(name string) tarEntry { return tarEntry{Name: name, Type: tar.TypeReg, Mode: 0o644} }

// TestDiffEntries runs each case's ops on a real overlay over its lower
// tree, then checks the tar Diff writes entry by entry, and that applying
// that tar to a copy of the lower tree gives the merged view.
func TestDiffEntries(t *testing.T) {
	requireOverlay(t)
	cap := string([]byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) // cap_net_bind_service+ep
	longName := strings.Repeat("long-name-", 20)
	nonUTF8 := "caf\xe9-\xff"
	old := time.Unix(1600000000, 0)
	tests := []struct {
		name  string
		lower func(t *testing.T, dir string)
		ops   func(t *testing.T, m string)
		want  []tarEntry
		stats DiffStats
	}{{
		name:  "add file in existing dir",
		lower: func(t *testing.T, l string) { mkdir(t, l+"/etc", 0o755) },
		ops:   func(t *testing.T, m string) { write(t, m+"/etc/new", "x", 0o644) },
		want:  []tarEntry{dirE("etc/"), fileE("etc/new", "x")},
		stats: DiffStats{Added: 1},
	}, {
		name:  "modify and delete",
		lower: func(t *testing.T, l string) { write(t, l+"/etc/a", "a", 0o644); write(t, l+"/etc/b", "b", 0o644) },
		ops: func(t *testing.T, m string) {
			write(t, m+"/etc/a", "A", 0o644)
			must(t, os.Remove(m+"/etc/b"))
		},
		want:  []tarEntry{dirE("etc/"), fileE("etc/a", "A"), whE("etc/.wh.b")},
		stats: DiffStats{Modified: 1, Deleted: 1},
	}, {
		name: "dir deleted and made again is opaque",
		lower: func(t *testing.T, l string) {
			write(t, l+"/d/old", "o", 0o644)
			write(t, l+"/d/sub/x", "x", 0o644)
		},
		ops: func(t *testing.T, m string) {
			must(t, os.RemoveAll(m+"/d"))
			write(t, m+"/d/new", "n", 0o644)
		},
		want:  []tarEntry{dirE("d/"), whE("d/.wh..wh..opq"), fileE("d/new", "n")},
		stats: DiffStats{Modified: 1, Added: 1},
	}, {
		name:  "dir renamed in where the lower has none is not opaque",
		lower: func(t *testing.T, l string) { mkdir(t, l+"/usr", 0o755) },
		ops: func(t *testing.T, m string) {
			write(t, m+"/usr/lib.new/f", "f", 0o644)
			must(t, os.Rename(m+"/usr/lib.new", m+"/usr/lib"))
		},
		want:  []tarEntry{dirE("usr/"), dirE("usr/lib/"), fileE("usr/lib/f", "f")},
		stats: DiffStats{Added: 2},
	}, {
		name:  "create and delete within the step leaves nothing",
		lower: func(t *testing.T, l string) { mkdir(t, l+"/tmp", 0o755) },
		ops: func(t *testing.T, m string) {
			write(t, m+"/tmp/x", "x", 0o644)
			must(t, os.Remove(m+"/tmp/x"))
		},
		want: nil,
	}, {
		name: "copy-up without change adds nothing",
		lower: func(t *testing.T, l string) {
			write(t, l+"/etc/f", "same", 0o644)
			must(t, os.Chtimes(l+"/etc/f", old, old))
		},
		ops: func(t *testing.T, m string) {
			must(t, os.Chown(m+"/etc/f", 0, 0)) // copied up, mtime kept
			write(t, m+"/etc/f", "same", 0o644)
			must(t, os.Chtimes(m+"/etc/f", time.Now(), old))
		},
		want: nil,
	}, {
		name: "an mtime the step set is a change",
		lower: func(t *testing.T, l string) {
			write(t, l+"/etc/f", "same", 0o644)
			must(t, os.Chtimes(l+"/etc/f", old, old))
		},
		ops: func(t *testing.T, m string) {
			older := old.Add(-24 * time.Hour)
			must(t, os.Chtimes(m+"/etc/f", older, older)) // touch -d
		},
		want:  []tarEntry{dirE("etc/"), fileE("etc/f", "same")},
		stats: DiffStats{Modified: 1},
	}, {
		name:  "mode and owner changes are changes",
		lower: func(t *testing.T, l string) { write(t, l+"/bin/su", "su", 0o755); write(t, l+"/bin/o", "o", 0o644) },
		ops: func(t *testing.T, m string) {
			must(t, unix.Chmod(m+"/bin/su", 0o4755))
			must(t, os.Chown(m+"/bin/o", 1000, 1001))
		},
		want: []tarEntry{
			dirE("bin/"),
			{Name: "bin/o", Type: tar.TypeReg, Mode: 0o644, UID: 1000, GID: 1001, Content: "o"},
			{Name: "bin/su", Type: tar.TypeReg, Mode: 0o4755, Content: "su"},
		},
		stats: DiffStats{Modified: 2},
	}, {
		name:  "xattrs survive except overlay-private ones",
		lower: func(t *testing.T, l string) { write(t, l+"/f", "f", 0o644) },
		ops: func(t *testing.T, m string) {
			write(t, m+"/ping", "p", 0o755)
			must(t, unix.Lsetxattr(m+"/ping", "security.capability", []byte(cap), 0))
			must(t, unix.Lsetxattr(m+"/ping", "user.mime", []byte("x/y"), 0))
			must(t, unix.Lsetxattr(m+"/ping", "trusted.tool", []byte("t"), 0))
			must(t, unix.Lsetxattr(m+"/f", "user.tag", []byte("v\x00bin"), 0))
		},
		want: []tarEntry{
			{Name: "f", Type: tar.TypeReg, Mode: 0o644, Content: "f", Xattrs: map[string]string{"user.tag": "v\x00bin"}},
			{Name: "ping", Type: tar.TypeReg, Mode: 0o755, Content: "p", Xattrs: map[string]string{"security.capability": cap, "trusted.tool": "t", "user.mime": "x/y"}},
		},
		stats: DiffStats{Added: 1, Modified: 1},
	}, {
		name:  "new hardlink to an unmodified lower file",
		lower: func(t *testing.T, l string) { write(t, l+"/bin/a", "data", 0o755) },
		ops:   func(t *testing.T, m string) { must(t, os.Link(m+"/bin/a", m+"/bin/b")) },
		want: []tarEntry{
			dirE("bin/"),
			{Name: "bin/a", Type: tar.TypeReg, Mode: 0o755, Content: "data"},
			{Name: "bin/b", Type: tar.TypeLink, Mode: 0o755, Link: "bin/a"},
		},
		stats: DiffStats{Modified: 1, Added: 1},
	}, {
		name:  "special files and modes",
		lower: func(t *testing.T, l string) {},
		ops: func(t *testing.T, m string) {
			must(t, unix.Mkfifo(m+"/fifo", 0o600))
			must(t, unix.Mknod(m+"/null", unix.S_IFCHR, int(unix.Mkdev(1, 3))))
			must(t, unix.Chmod(m+"/null", 0o666))
			must(t, unix.Mknod(m+"/loop", unix.S_IFBLK, int(unix.Mkdev(7, 0))))
			must(t, unix.Chmod(m+"/loop", 0o660))
			must(t, os.Symlink("../target", m+"/sym"))
			must(t, os.Mkdir(m+"/tmp", 0o755))
			must(t, unix.Chmod(m+"/tmp", 0o1777))
			write(t, m+"/sg", "", 0o755)
			must(t, unix.Chmod(m+"/sg", 0o2755))
			must(t, unix.Fchmodat(unix.AT_FDCWD, m+"/fifo", 0o600, 0))
		},
		want: []tarEntry{
			{Name: "fifo", Type: tar.TypeFifo, Mode: 0o600},
			{Name: "loop", Type: tar.TypeBlock, Mode: 0o660, Dev: "7:0"},
			{Name: "null", Type: tar.TypeChar, Mode: 0o666, Dev: "1:3"},
			{Name: "sg", Type: tar.TypeReg, Mode: 0o2755},
			{Name: "sym", Type: tar.TypeSymlink, Mode: 0o777, Link: "../target"},
			{Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777},
		},
		stats: DiffStats{Added: 6},
	}, {
		name:  "long and non-UTF-8 names",
		lower: func(t *testing.T, l string) { mkdir(t, l+"/d", 0o755) },
		ops: func(t *testing.T, m string) {
			write(t, m+"/d/"+longName, "l", 0o644)
			write(t, m+"/d/"+longName+"x/"+longName, "deep", 0o644)
			write(t, m+"/d/"+nonUTF8, "n", 0o644)
			must(t, os.Symlink(longName, m+"/d/ln"))
		},
		want: []tarEntry{
			dirE("d/"),
			fileE("d/"+nonUTF8, "n"),
			{Name: "d/ln", Type: tar.TypeSymlink, Mode: 0o777, Link: longName},
			fileE("d/"+longName, "l"),
			dirE("d/" + longName + "x/"),
			fileE("d/"+longName+"x/"+longName, "deep"),
		},
		stats: DiffStats{Added: 5},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lower := filepath.Join(t.TempDir(), "lower")
			mkdir(t, lower, 0o755)
			tc.lower(t, lower)
			upper, merged := overlayRun(t, []string{lower}, func(m string) { tc.ops(t, m) })
			tarball, stats := mustDiff(t, DiffOptions{Upper: upper, Lowers: []string{lower}})
			if diff := cmp.Diff(tc.want, readTar(t, tarball)); diff != "" {
				t.Errorf("Diff entries (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.stats, stats); diff != "" {
				t.Errorf("Diff stats (-want +got):\n%s", diff)
			}
			applied := filepath.Join(t.TempDir(), "applied")
			mkdir(t, applied, 0o755)
			tc.lower(t, applied)
			if err := Apply(t.Context(), applied, bytes.NewReader(tarball)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(merged, scan(t, applied)); diff != "" {
				t.Errorf("lower + layer differs from the merged view (-merged +applied):\n%s", diff)
			}
			// The trimmed upper dir, used as a lower, must show the same view.
			_, again := overlayRun(t, []string{upper, lower}, func(string) {})
			if diff := cmp.Diff(merged, again); diff != "" {
				t.Errorf("trimmed upper as a lower differs from the merged view (-merged +again):\n%s", diff)
			}
			assertUnpackedView(t, tarball, lower, merged)
		})
	}
}

// TestDiffLeavesOutSockets: a socket reaches neither the layer nor the
// snapshot, and nor does the dir it was made in when nothing else changed
// there (the lower's shows through).
func TestDiffLeavesOutSockets(t *testing.T) {
	lower, upper := t.TempDir(), t.TempDir()
	for _, root := range []string{lower, upper} {
		mkdir(t, root+"/run", 0o755)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	must(t, err)
	defer unix.Close(fd)
	must(t, unix.Bind(fd, &unix.SockaddrUnix{Name: upper + "/run/app.sock"}))
	tarball, stats := mustDiff(t, DiffOptions{Upper: upper, Lowers: []string{lower}})
	if entries := readTar(t, tarball); len(entries) > 0 || !stats.Empty() {
		t.Errorf("Diff wrote %v (%+v), want nothing", entries, stats)
	}
	if left, _ := os.ReadDir(upper); len(left) > 0 {
		t.Errorf("the snapshot holds %v, want nothing", left)
	}
}

// TestDiffRefusesWhiteoutNames: a file a step names .wh.* (or a dir
// .wh..wh..opq) would delete a lower file in the layer, or hide a whole
// dir; the diff fails, naming it.
func TestDiffRefusesWhiteoutNames(t *testing.T) {
	for _, name := range []string{".wh.config", ".wh..wh..opq", ".wh."} {
		upper := t.TempDir()
		write(t, upper+"/t/"+name, "x", 0o644)
		var buf bytes.Buffer
		_, err := Diff(t.Context(), &buf, DiffOptions{Upper: upper, Lowers: []string{t.TempDir()}})
		if err == nil || !strings.Contains(err.Error(), "/t/"+name+": a layer cannot hold a file named") {
			t.Errorf("Diff of /t/%s = %v, want it refused", name, err)
		}
	}
}

// TestDiffRefusesMissingLower: a lower dir that is gone (or not a dir)
// fails the diff, where it would read as empty and drop the whiteouts
// over it; neither the writer nor the upper dir is touched.
func TestDiffRefusesMissingLower(t *testing.T) {
	upper, file := t.TempDir(), filepath.Join(t.TempDir(), "file")
	write(t, filepath.Join(upper, "new"), "x", 0o644)
	write(t, file, "x", 0o644)
	for _, lower := range []string{filepath.Join(t.TempDir(), "gone"), file} {
		for _, o := range []DiffOptions{{KeepUpper: true}, {TrimOnly: true}, {}} {
			o.Upper, o.Lowers = upper, []string{t.TempDir(), lower}
			var buf bytes.Buffer
			if _, err := Diff(t.Context(), &buf, o); err == nil || !strings.Contains(err.Error(), "lower dir") || buf.Len() > 0 {
				t.Errorf("Diff over lower %s (%+v) = %v, %d bytes written; want a lower dir error, nothing", lower, o, err, buf.Len())
			}
		}
	}
	if _, err := os.Stat(filepath.Join(upper, "new")); err != nil {
		t.Errorf("the upper dir was changed: %v", err)
	}
}

// TestDiffWriterError: a writer that fails makes Diff fail with its error.
func TestDiffWriterError(t *testing.T) {
	requireOverlay(t)
	upper, lower := bigUpper(t)
	full := errors.New("disk full")
	w := &limitWriter{left: 300 << 10, err: full}
	_, err := Diff(t.Context(), w, DiffOptions{Upper: upper, Lowers: []string{lower}, KeepUpper: true})
	if !errors.Is(err, full) {
		t.Fatalf("Diff to a failing writer = %v, want %v", err, full)
	}
}

// TestDiffStopsWriting: when the walk fails, Diff returns only once its
// writer is no longer written to. The writer is slow, so that the buffer
// before it is full when the walk fails (its context is canceled on the
// first Write): what is buffered then goes on reaching the writer for
// some milliseconds, before Diff returns or, wrongly, after.
func TestDiffStopsWriting(t *testing.T) {
	requireOverlay(t)
	upper, lower := bigUpper(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	w := &slowWriter{first: cancel}
	_, err := Diff(ctx, w, DiffOptions{Upper: upper, Lowers: []string{lower}, KeepUpper: true})
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Diff canceled on its writer's first Write = %v, want %v", err, context.Canceled)
	}
	time.Sleep(50 * time.Millisecond)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.late > 0 {
		t.Errorf("Diff returned, then its writer got %d Writes; want none after Diff returns", w.late)
	}
}

// bigUpper makes an upper dir of 20 files of 100 KiB over an empty lower
// dir.
func bigUpper(t *testing.T) (upper, lower string) {
	t.Helper()
	lower = t.TempDir()
	upper, _ = overlayDo(t, []string{lower}, func(m string) {
		for i := range 20 {
			write(t, filepath.Join(m, fmt.Sprintf("f%02d", i)), strings.Repeat("x", 100<<10), 0o644)
		}
	}, false)
	return upper, lower
}

// limitWriter takes left bytes, then fails with err.
type limitWriter struct {
	left int
	err  error
}

func (w *limitWriter) Write(b []byte) (int, error) {
	if len(b) > w.left {
		n := w.left
		w.left = 0
		return n, w.err
	}
	w.left -= len(b)
	return len(b), nil
}

// slowWriter takes all it is given, a millisecond a Write; it calls first
// on its first Write and counts the Writes made once closed is set.
type slowWriter struct {
	mu     sync.Mutex
	first  func()
	writes int
	closed bool
	late   int
}

func (w *slowWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	if w.writes++; w.writes == 1 {
		w.first()
	}
	if w.closed {
		w.late++
	}
	w.mu.Unlock()
	time.Sleep(time.Millisecond)
	return len(b), nil
}

// TestDiffHardlinkedCopyUpUnchanged: a chown or chmod -R that changed
// nothing copies up every name of a hardlink group (each its own upper
// inode); as in BuildKit, that is no change: recorded, each name would
// be stored again, whole.
func TestDiffHardlinkedCopyUpUnchanged(t *testing.T) {
	requireOverlay(t)
	old := time.Unix(1600000000, 0)
	lower := filepath.Join(t.TempDir(), "lower")
	write(t, lower+"/opt/pkgs/f", "data", 0o644)
	must(t, os.Chtimes(lower+"/opt/pkgs/f", old, old))
	must(t, os.MkdirAll(lower+"/opt/env", 0o755))
	must(t, os.Link(lower+"/opt/pkgs/f", lower+"/opt/env/f"))
	upper, _ := overlayRun(t, []string{lower}, func(m string) {
		for _, p := range []string{"/opt/pkgs/f", "/opt/env/f"} {
			must(t, os.Chown(m+p, 0, 0))
			must(t, os.Chmod(m+p, 0o644))
		}
	})
	tarball, stats := mustDiff(t, DiffOptions{Upper: upper, Lowers: []string{lower}})
	if entries := readTar(t, tarball); len(entries) > 0 || !stats.Empty() {
		t.Errorf("a chown and chmod that changed nothing wrote %v", entries)
	}
}
