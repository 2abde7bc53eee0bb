package layers

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"

	"github.com/stratabuild/strata/internal/testutil"
	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/internal/rootfs"
)

// requireOverlay skips (or fails under STRATA_REQUIRE_PRIVILEGED=1) unless
// an overlay with a whiteout-capable lower really mounts here.
func requireOverlay(t testing.TB) {
	t.Helper()
	testutil.Require(t, "overlay mount", func() error {
		dir, err := os.MkdirTemp("", "strata-probe-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		for _, d := range []string{"l", "u", "w", "m"} {
			if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
				return err
			}
		}
		if err := unix.Mknod(filepath.Join(dir, "l", "wh"), unix.S_IFCHR, 0); err != nil {
			return fmt.Errorf("mknod: %w", err)
		}
		m, err := Mount(context.Background(), MountOptions{
			Lowers: []string{filepath.Join(dir, "l")}, Upper: filepath.Join(dir, "u"),
			Work: filepath.Join(dir, "w"), Target: filepath.Join(dir, "m"),
		})
		if err != nil {
			return err
		}
		return m.Unmount()
	}, "run as root on a kernel with overlayfs: sudo go test ./layers")
}

// overlayRun mounts lowers (top first) with a fresh upper dir, runs ops on
// the merged dir, records the merged view, unmounts and returns the upper
// dir and the view.
func overlayRun(t testing.TB, lowers []string, ops func(merged string)) (upper string, merged map[string]node) {
	t.Helper()
	return overlayDo(t, lowers, ops, true)
}

func overlayDo(t testing.TB, lowers []string, ops func(merged string), record bool) (upper string, merged map[string]node) {
	t.Helper()
	base := t.TempDir()
	upper, work, target := filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "merged")
	for _, d := range []string{upper, work, target} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m, err := Mount(t.Context(), MountOptions{Lowers: lowers, Upper: upper, Work: work, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmount()
	ops(target)
	if record {
		merged = scan(t, target)
	}
	if err := m.Unmount(); err != nil {
		t.Fatal(err)
	}
	return upper, merged
}

// tarEntry is what a layer test asserts about one tar entry.
type tarEntry struct {
	Name     string
	Type     byte
	Mode     int64
	UID, GID int
	Link     string
	Dev      string
	Xattrs   map[string]string
	Content  string
}

func readTar(t testing.TB, b []byte) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Uname != "" || hdr.Gname != "" || !hdr.AccessTime.IsZero() || !hdr.ChangeTime.IsZero() {
			t.Errorf("entry %q has uname %q gname %q atime %v ctime %v, want none", hdr.Name, hdr.Uname, hdr.Gname, hdr.AccessTime, hdr.ChangeTime)
		}
		e := tarEntry{Name: hdr.Name, Type: hdr.Typeflag, Mode: hdr.Mode, UID: hdr.Uid, GID: hdr.Gid, Link: hdr.Linkname}
		if hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock {
			e.Dev = fmt.Sprintf("%d:%d", hdr.Devmajor, hdr.Devminor)
		}
		for k, v := range hdr.PAXRecords {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				if e.Xattrs == nil {
					e.Xattrs = map[string]string{}
				}
				e.Xattrs[name] = v
			}
		}
		c, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		e.Content = string(c)
		out = append(out, e)
	}
}

// node is what a round-trip test compares about one path of a tree.
type node struct {
	Mode     uint32 // type and permission bits
	UID, GID uint32
	Content  string // sha256 of a file, target of a symlink
	Rdev     uint64
	Xattrs   map[string]string
	Links    string // the other paths sharing this inode, for files with nlink > 1
}

// scan records every path below root (not root itself).
func scan(t testing.TB, root string) map[string]node {
	t.Helper()
	out := map[string]node{}
	inodes := map[uint64][]string{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		n := node{Mode: st.Mode, UID: st.Uid, GID: st.Gid}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			n.Content = hex.EncodeToString(h.Sum(nil))
			if st.Nlink > 1 {
				inodes[st.Ino] = append(inodes[st.Ino], rel)
			}
		case unix.S_IFLNK:
			n.Content, err = os.Readlink(p)
			if err != nil {
				return err
			}
		case unix.S_IFCHR, unix.S_IFBLK:
			n.Rdev = st.Rdev
		}
		n.Xattrs, err = rootfs.Xattrs(p, rootfs.LayerXattr)
		if err != nil {
			return err
		}
		out[rel] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, paths := range inodes {
		if len(paths) < 2 {
			continue // its other links are outside the tree or gone
		}
		sort.Strings(paths)
		for _, p := range paths {
			n := out[p]
			n.Links = strings.Join(paths, ",")
			out[p] = n
		}
	}
	return out
}

func mustDiff(t testing.TB, o DiffOptions) ([]byte, DiffStats) {
	t.Helper()
	var buf bytes.Buffer
	st, err := Diff(t.Context(), &buf, o)
	if err != nil {
		t.Fatalf("Diff: %v", err)
	}
	return buf.Bytes(), st
}

// trimOnlyClone copies the upper dir o.Upper as it is (xattrs, devices,
// hardlinks, nanosecond times: cp -a), trims the copy with TrimOnly and
// returns the copy and the diff's counts. Call it before the upper dir
// itself is diffed: the copy is what a step leaves to be trimmed.
func trimOnlyClone(t testing.TB, o DiffOptions) (string, DiffStats) {
	t.Helper()
	clone := filepath.Join(t.TempDir(), "clone")
	if out, err := exec.Command("cp", "-a", o.Upper, clone).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
	o.Upper, o.TrimOnly = clone, true
	st, err := Diff(t.Context(), nil, o)
	if err != nil {
		t.Fatalf("Diff TrimOnly: %v", err)
	}
	return clone, st
}

// assertSameTrim checks that the upper dir trimmed by TrimOnly (clone,
// with its counts st) is the one a Diff writing the tar left (upper,
// whose tar and counts were tarball and want): the same tree and the
// same tar diffed again.
func assertSameTrim(t *testing.T, clone string, st DiffStats, upper string, want DiffStats, tarball []byte, o DiffOptions) {
	t.Helper()
	if st != want {
		t.Errorf("TrimOnly counts %+v, the tar's %+v", st, want)
	}
	if diff := cmp.Diff(scan(t, upper), scan(t, clone)); diff != "" {
		t.Errorf("TrimOnly left another upper dir than the diff (-diff +trim):\n%s", diff)
	}
	if diff := cmp.Diff(mtimes(t, upper), mtimes(t, clone)); diff != "" {
		t.Errorf("TrimOnly left other mtimes than the diff (-diff +trim):\n%s", diff)
	}
	o.Upper, o.KeepUpper = clone, true
	if again, _ := mustDiff(t, o); !bytes.Equal(again, tarball) {
		t.Errorf("the upper dir TrimOnly left diffs to another tar (%d bytes, the diff's %d)", len(again), len(tarball))
	}
}

// mtimes maps each non-dir below root to its mtime, to the nanosecond.
// (A dir a trim removed entries from has the time of the trim.)
func mtimes(t testing.TB, root string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = st.Mtim.Nano()
		return nil
	})
	must(t, err)
	return out
}

// Small fs operations for test tables; each fails the test on error.

func write(t testing.TB, p, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t testing.TB, p string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(p, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// assertUnpackedView unpacks a layer into a store and checks that, mounted
// over lower, it shows the merged view the layer was diffed from.
func assertUnpackedView(t *testing.T, layer []byte, lower string, merged map[string]node) {
	t.Helper()
	s, err := OpenStore(t.TempDir(), nil)
	must(t, err)
	snap, err := s.Unpack(t.Context(), digest.FromBytes(layer), bytes.NewReader(layer))
	must(t, err)
	_, view := overlayRun(t, []string{snap, lower}, func(string) {})
	if diff := cmp.Diff(merged, view); diff != "" {
		t.Errorf("unpacked layer over the lower differs from the merged view (-merged +unpacked):\n%s", diff)
	}
}
