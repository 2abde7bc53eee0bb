package fscopy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/internal/testutil"

	"github.com/stratabuild/strata/internal/rootfs"
)

var capValue = []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// richTree makes a tree with every kind of entry and metadata Copy keeps.
func richTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	p := func(s string) string { return filepath.Join(root, s) }
	must(t, os.MkdirAll(p("app/private"), 0o755))
	must(t, os.WriteFile(p("app/bin"), []byte("#!/bin/sh\necho bin\n"), 0o755))
	must(t, unix.Lsetxattr(p("app/bin"), "security.capability", capValue, 0))
	must(t, unix.Lsetxattr(p("app/bin"), "user.note", []byte("hello"), 0))
	must(t, os.WriteFile(p("app/suid"), []byte("suid"), 0o644))
	must(t, os.Chmod(p("app/suid"), 0o4755))
	must(t, os.WriteFile(p("app/data"), bytes.Repeat([]byte("x"), 1<<20), 0o600))
	must(t, os.Link(p("app/data"), p("app/data.link")))
	must(t, os.Symlink("/etc/passwd", p("app/abs-link")))
	must(t, os.Symlink("data", p("app/rel-link")))
	must(t, unix.Mkfifo(p("app/fifo"), 0o640))
	must(t, unix.Mknod(p("app/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, os.WriteFile(p("app/private/secret"), []byte("s"), 0o600))
	must(t, os.Chown(p("app/private/secret"), 1234, 5678))
	must(t, os.Chmod(p("app/private"), 0o700))
	must(t, os.Chown(p("app/private"), 1234, 5678))
	must(t, os.Chmod(p("app"), 0o1777))
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	must(t, filepath.Walk(root, func(q string, fi os.FileInfo, err error) error {
		must(t, err)
		ts := []unix.Timespec{unix.NsecToTimespec(old.UnixNano()), unix.NsecToTimespec(old.UnixNano())}
		return unix.UtimesNanoAt(unix.AT_FDCWD, q, ts, unix.AT_SYMLINK_NOFOLLOW)
	}))
	return root
}

// describe lists every entry below dir: type, mode, owner, size, content
// hash, link target, rdev, mtime, xattrs, and which entries share an inode.
func describe(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	inodes := map[uint64][]string{}
	must(t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		must(t, err)
		rel, _ := filepath.Rel(dir, p)
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %v %d:%d mtime=%d", rel, fi.Mode(), st.Uid, st.Gid, fi.ModTime().Unix())
		switch {
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			must(t, err)
			line += fmt.Sprintf(" sha=%x", sha256.Sum256(data))
			inodes[st.Ino] = append(inodes[st.Ino], rel)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			must(t, err)
			line += " -> " + target
		case fi.Mode()&fs.ModeDevice != 0:
			line += fmt.Sprintf(" rdev=%d", st.Rdev)
		}
		xs, _ := rootfs.Xattrs(p, rootfs.LayerXattr)
		names := make([]string, 0, len(xs))
		for n := range xs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			line += fmt.Sprintf(" %s=%q", n, xs[n])
		}
		out = append(out, line)
		return nil
	}))
	for _, names := range inodes {
		if len(names) > 1 {
			sort.Strings(names)
			out = append(out, "same inode: "+strings.Join(names, " "))
		}
	}
	sort.Strings(out)
	return out
}

func TestCopyKeepsEverything(t *testing.T) {
	testutil.RequireRoot(t)
	src := richTree(t)
	dst := t.TempDir()
	st, err := Copy(context.Background(), src, []string{"/app"}, dst, "/app", Options{})
	must(t, err)
	// Everything below the destination dir, which the copy makes as
	// docker does: 0755 and root's, whatever its source's mode and owner.
	want, got := describe(t, filepath.Join(src, "app")), describe(t, filepath.Join(dst, "app"))
	if !strings.HasPrefix(want[0], ". drwxrwxrwx 0:0 ") || !strings.HasPrefix(got[0], ". drwxr-xr-x 0:0 ") {
		t.Errorf("source dir %q, destination dir %q: want the destination 0755, not the source's 0777", want[0], got[0])
	}
	if d := cmp.Diff(want[1:], got[1:]); d != "" {
		t.Errorf("copied tree (-source +copy):\n%s", d)
	}
	if st.Links != 1 || st.Bytes < 1<<20 {
		t.Errorf("stats %+v", st)
	}
}

func TestCopyOverrides(t *testing.T) {
	testutil.RequireRoot(t)
	src := richTree(t)
	dst := t.TempDir()
	mode := os.FileMode(0o640)
	epoch := time.Unix(1700000000, 0)
	_, err := Copy(context.Background(), src, []string{"app/private"}, dst, "/opt/new/priv", Options{UID: 7, GID: 8, OwnerSet: true, Mode: &mode, ModTime: &epoch})
	must(t, err)
	for _, p := range []string{"opt/new", "opt/new/priv", "opt/new/priv/secret"} {
		fi, err := os.Lstat(filepath.Join(dst, p))
		must(t, err)
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 7 || st.Gid != 8 {
			t.Errorf("%s owner %d:%d, want 7:8", p, st.Uid, st.Gid)
		}
		want := os.FileMode(0o640)
		if p == "opt/new/priv" {
			want = 0o755 // the destination dir, made as docker makes it: mode is for what is copied
		}
		if p != "opt/new" && (fi.Mode().Perm() != want || !fi.ModTime().Equal(epoch)) {
			t.Errorf("%s mode %v mtime %v, want %v and the epoch", p, fi.Mode(), fi.ModTime(), want)
		}
	}
}

// TestCopySemantics is docker COPY's table.
func TestCopySemantics(t *testing.T) {
	testutil.RequireRoot(t)
	src := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(src, "d/sub"), 0o755))
	for _, f := range []string{"a.txt", "b.txt", "d/x", "d/sub/y"} {
		must(t, os.WriteFile(filepath.Join(src, f), []byte(f), 0o644))
	}
	tests := []struct {
		name    string
		sources []string
		dest    string
		want    []string
		wantErr string
	}{
		{"file to file", []string{"/a.txt"}, "/out/renamed", []string{"out", "out/renamed"}, ""},
		{"file into dir", []string{"/a.txt"}, "/out/", []string{"out", "out/a.txt"}, ""},
		{"dir contents", []string{"/d"}, "/out", []string{"out", "out/sub", "out/sub/y", "out/x"}, ""},
		{"glob", []string{"/*.txt"}, "/out/", []string{"out", "out/a.txt", "out/b.txt"}, ""},
		{"several", []string{"/a.txt", "/d/x"}, "/out/", []string{"out", "out/a.txt", "out/x"}, ""},
		{"several without slash", []string{"/a.txt", "/b.txt"}, "/out", nil, "ending in /"},
		{"glob without slash", []string{"/*.txt"}, "/out", nil, "ending in /"},
		{"missing", []string{"/nope"}, "/out", nil, "nope"},
		{"glob matching nothing", []string{"/*.go"}, "/out/", nil, "matches nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := t.TempDir()
			_, err := Copy(context.Background(), src, tt.sources, dst, tt.dest, Options{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			must(t, err)
			var got []string
			must(t, filepath.Walk(dst, func(p string, _ os.FileInfo, err error) error {
				rel, _ := filepath.Rel(dst, p)
				if rel != "." {
					got = append(got, rel)
				}
				return err
			}))
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("tree (-want +got):\n%s", d)
			}
		})
	}
}

// TestCopyStaysInsideRoots: symlinks in source paths resolve inside the
// source root; symlinks in the destination never lead writes outside it.
func TestCopyStaysInsideRoots(t *testing.T) {
	testutil.RequireRoot(t)
	outside := t.TempDir()
	must(t, os.WriteFile(filepath.Join(outside, "host-file"), []byte("host"), 0o644))

	src := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(src, "etc"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "etc/host-file"), []byte("inside"), 0o644))
	must(t, os.Symlink(outside, filepath.Join(src, "abs")))          // absolute: means src/<outside>
	must(t, os.Symlink("../../../../etc", filepath.Join(src, "up"))) // clamps at the root
	dst := t.TempDir()
	_, err := Copy(context.Background(), src, []string{"/up/host-file"}, dst, "/got", Options{})
	must(t, err)
	if data, _ := os.ReadFile(filepath.Join(dst, "got")); string(data) != "inside" {
		t.Errorf("/up/host-file copied %q, want the file inside the source root", data)
	}
	if _, err := Copy(context.Background(), src, []string{"/abs/host-file"}, dst, "/x", Options{}); err == nil {
		t.Error("a symlink to an outside absolute path was followed out of the source root")
	}

	// The destination has a symlinked dir pointing at the outside dir.
	must(t, os.Symlink(outside, filepath.Join(dst, "evil")))
	must(t, os.Symlink("../../../..", filepath.Join(dst, "evil2")))
	_, err = Copy(context.Background(), src, []string{"/etc/host-file"}, dst, "/evil/", Options{})
	must(t, err)
	_, err = Copy(context.Background(), src, []string{"/etc/host-file"}, dst, "/evil2/", Options{})
	must(t, err)
	if data, _ := os.ReadFile(filepath.Join(outside, "host-file")); string(data) != "host" {
		t.Errorf("the copy wrote outside the destination root: %q", data)
	}
	entries, _ := os.ReadDir(outside)
	if len(entries) != 1 {
		t.Errorf("the copy created files outside the destination root: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(dst, outside, "host-file")); err != nil {
		t.Errorf("the copy through /evil did not land inside the root: %v", err)
	}
}

func TestCopyCancelled(t *testing.T) {
	testutil.RequireRoot(t)
	src := richTree(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Copy(ctx, src, []string{"/app"}, t.TempDir(), "/app", Options{}); err == nil {
		t.Error("a cancelled copy succeeded")
	}
}
