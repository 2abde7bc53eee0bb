package fscopy

import (
	"context"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/internal/testutil"
)

// writeTree makes files under dir from "path": content; a content of "DIR"
// makes a directory and "->target" a symlink.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case content == "DIR":
			err = os.MkdirAll(full, 0o700)
		case strings.HasPrefix(content, "->"):
			err = os.Symlink(strings.TrimPrefix(content, "->"), full)
		default:
			err = os.WriteFile(full, []byte(content), 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// listTree describes every entry below dir as "path mode uid:gid content".
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		r, _ := filepath.Rel(dir, p)
		line := r + " " + fi.Mode().String() + " " + strconv.Itoa(int(st.Uid)) + ":" + strconv.Itoa(int(st.Gid))
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			line += " ->" + l
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			line += " " + string(b)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestCopyFromContextTable(t *testing.T) {
	testutil.RequireRoot(t) // chown to other owners
	ctxFiles := map[string]string{
		"config.toml":      "cfg",
		"src/main.go":      "package main",
		"src/run.sh":       "#!/bin/sh",
		"src/lib/util.go":  "package lib",
		"src/secret.key":   "KEY",
		"src/link":         "->main.go",
		"docs/a.md":        "a",
		"docs/b.md":        "b",
		"docs/c.txt":       "c",
		".strataignore":    "src/*.key\n",
		"escape":           "->../outside",
		"empty":            "DIR",
		"nested/deep/file": "deep",
	}
	tests := []struct {
		name    string
		sources []string
		dest    string
		opts    Options
		want    []string
		wantErr string
	}{
		{
			name:    "file to a new path",
			sources: []string{"config.toml"}, dest: "/etc/app.toml",
			want: []string{"etc drwxr-xr-x 0:0", "etc/app.toml -rw-r--r-- 0:0 cfg"},
		},
		{
			name:    "file into a dir",
			sources: []string{"config.toml"}, dest: "/opt/app/", opts: Options{UID: 1000, GID: 1000},
			want: []string{"opt drwxr-xr-x 1000:1000", "opt/app drwxr-xr-x 1000:1000", "opt/app/config.toml -rw-r--r-- 1000:1000 cfg"},
		},
		{
			name:    "dir copies its contents, ignore file applies",
			sources: []string{"src"}, dest: "/src",
			want: []string{
				"src drwxr-xr-x 0:0",
				"src/lib drwxr-xr-x 0:0",
				"src/lib/util.go -rw-r--r-- 0:0 package lib",
				"src/link Lrwxrwxrwx 0:0 ->main.go",
				"src/main.go -rw-r--r-- 0:0 package main",
				"src/run.sh -rwxr-xr-x 0:0 #!/bin/sh",
			},
		},
		{
			name:    "glob into a dir",
			sources: []string{"docs/*.md"}, dest: "/d/",
			want: []string{"d drwxr-xr-x 0:0", "d/a.md -rw-r--r-- 0:0 a", "d/b.md -rw-r--r-- 0:0 b"},
		},
		{
			name:    "mode given",
			sources: []string{"nested"}, dest: "/n", opts: Options{Mode: ptr(os.FileMode(0o640))},
			want: []string{"n drwxr-xr-x 0:0" /* made as docker makes it: mode is for what is copied */, "n/deep drw-r----- 0:0", "n/deep/file -rw-r----- 0:0 deep"},
		},
		{name: "dotdot", sources: []string{"../x"}, dest: "/x", wantErr: "outside the build context"},
		{name: "symlink out", sources: []string{"escape"}, dest: "/x", wantErr: "leaves the build context"},
		{name: "ignored source", sources: []string{"src/secret.key"}, dest: "/x", wantErr: "excluded by .strataignore"},
		{name: "no match", sources: []string{"*.none"}, dest: "/x/", wantErr: "matches nothing in the build context"},
		{name: "several to a file", sources: []string{"docs/a.md", "docs/b.md"}, dest: "/x", wantErr: "ending in /"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := t.TempDir()
			contextDir := filepath.Join(top, "context")
			writeTree(t, contextDir, ctxFiles)
			if err := os.Chmod(filepath.Join(contextDir, "src/run.sh"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(top, "outside"), []byte("outside"), 0o644); err != nil {
				t.Fatal(err)
			}
			ignore, err := LoadIgnore(contextDir)
			if err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(top, "rootfs")
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			o := tt.opts
			o.Policy, o.Ignore = FromContext, ignore
			_, err = Copy(context.Background(), contextDir, tt.sources, dst, tt.dest, o)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Copy() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Copy(): %v", err)
			}
			if diff := cmp.Diff(tt.want, listTree(t, dst)); diff != "" {
				t.Errorf("rootfs after copy (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCopyFromContextKeepsHardlinks(t *testing.T) {
	contextDir := t.TempDir()
	writeTree(t, contextDir, map[string]string{"d/a": "data"})
	if err := os.Link(filepath.Join(contextDir, "d/a"), filepath.Join(contextDir, "d/b")); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if _, err := Copy(context.Background(), contextDir, []string{"d"}, dst, "/d", Options{Policy: FromContext, UID: os.Getuid(), GID: os.Getgid()}); err != nil {
		t.Fatal(err)
	}
	a, err := os.Stat(filepath.Join(dst, "d/a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.Stat(filepath.Join(dst, "d/b"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(a, b) {
		t.Errorf("d/a and d/b are separate files after the copy, want one inode")
	}
}

// TestCopyHardlinkWrittenOver: a hardlinked source's first copy written
// over by another source is no longer what the link's later names link
// to, and one inode copied twice to one path is copied, not linked to
// itself: a/x and c/y are one file, b/x another; [a/, b/, c/] into /d/
// gives x from b and y from a (as docker's COPY), and [f, sub/f] into /d/
// gives d/f.
func TestCopyHardlinkWrittenOver(t *testing.T) {
	contextDir := t.TempDir()
	writeTree(t, contextDir, map[string]string{"a/x": "AAAA", "b/x": "BBBB", "c/.keep": "", "f": "F"})
	for _, l := range [][2]string{{"a/x", "c/y"}, {"f", "sub/f"}} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(contextDir, l[1])), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(filepath.Join(contextDir, l[0]), filepath.Join(contextDir, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	o := Options{Policy: FromContext, UID: os.Getuid(), GID: os.Getgid()}
	dst := t.TempDir()
	if _, err := Copy(context.Background(), contextDir, []string{"a/", "b/", "c/"}, dst, "/d/", o); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"d/x": "BBBB", "d/y": "AAAA"} {
		if b, err := os.ReadFile(filepath.Join(dst, name)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
	if _, err := Copy(context.Background(), contextDir, []string{"f", "sub/f"}, dst, "/e/", o); err != nil {
		t.Fatalf("copy of one inode twice to one path: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "e/f")); err != nil || string(b) != "F" {
		t.Errorf("e/f = %q, %v; want F", b, err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestContextInputs(t *testing.T) {
	ctx := t.TempDir()
	writeTree(t, ctx, map[string]string{
		".strataignore":  "src/*.log\n",
		"src/main.go":    "package main",
		"src/debug.log":  "ignored",
		"src/sub/x.go":   "package sub",
		"conf/a.toml":    "a",
		"conf/b.toml":    "b",
		"conf/c.ini":     "c",
		"unrelated.file": "u",
	})
	ignore, err := LoadIgnore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := ContextInputs(ctx, ignore, []string{"src", "conf/*.toml"}, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"conf/a.toml", "conf/b.toml", "src", "src/main.go", "src/sub", "src/sub/x.go"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("inputs (-want +got):\n%s", d)
	}
	if _, _, err := ContextInputs(ctx, ignore, []string{"../x"}, ""); err == nil {
		t.Error("a source outside the context was accepted")
	}

	// A symlink named as a source is copied as what it leads to: that is
	// read too.
	if err := os.Symlink("conf/c.ini", filepath.Join(ctx, "link.ini")); err != nil {
		t.Fatal(err)
	}
	got, _, err = ContextInputs(ctx, ignore, []string{"link.ini", "*.ini"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"conf/c.ini", "link.ini"}, got); d != "" {
		t.Errorf("inputs of a symlink source (-want +got):\n%s", d)
	}

	// One that leads to what the ignore file leaves out copies nothing:
	// refused (docker's COPY fails on the dangling link), when planned
	// and when copied.
	if err := os.Symlink("src/debug.log", filepath.Join(ctx, "log")); err != nil {
		t.Fatal(err)
	}
	refused := `copy source "log": it leads to src/debug.log, which .strataignore leaves out`
	if _, _, err := ContextInputs(ctx, ignore, []string{"log"}, ""); err == nil || err.Error() != refused {
		t.Errorf("ContextInputs of a link to an ignored file: %v, want %q", err, refused)
	}
	if _, err := Copy(context.Background(), ctx, []string{"log"}, t.TempDir(), "/out/", Options{Policy: FromContext, Ignore: ignore}); err == nil || err.Error() != refused {
		t.Errorf("Copy of a link to an ignored file: %v, want %q", err, refused)
	}
}

// TestDestinationDirectoryRefused: a file copied, or written by a file
// step, where the rootfs has a directory is refused, the directory kept.
// (A copy whose destination itself is a directory copies into it.)
func TestDestinationDirectoryRefused(t *testing.T) {
	testutil.RequireRoot(t) // owners 0:0
	contextDir, dst := t.TempDir(), t.TempDir()
	writeTree(t, contextDir, map[string]string{"conf/app.conf": "x"})
	if err := os.MkdirAll(filepath.Join(dst, "etc/app.conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	ignore, err := LoadIgnore(contextDir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Copy(t.Context(), contextDir, []string{"conf"}, dst, "/etc", Options{Policy: FromContext, Ignore: ignore})
	if want := "copy destination /etc/app.conf is a directory; end it with / to copy into it"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Copy onto a directory = %v, want %q", err, want)
	}
	err = WriteFile(t.Context(), dst, "/etc/app.conf", []byte("x"), Options{})
	if want := "file destination /etc/app.conf is a directory"; err == nil || err.Error() != want {
		t.Errorf("WriteFile onto a directory = %v, want %q", err, want)
	}
	if fi, err := os.Stat(filepath.Join(dst, "etc/app.conf")); err != nil || !fi.IsDir() {
		t.Errorf("the directory is gone: %v", err)
	}
}

// TestCopyIntoAnExistingDirKeepsIt: a directory copied into a directory
// that is there already leaves that one's mode and owner as they were (as
// docker's COPY does: /tmp stays 1777, a user's home theirs);
// a directory below it, there already too, takes its source's; a
// destination the copy makes takes its source's.
func TestCopyIntoAnExistingDirKeepsIt(t *testing.T) {
	testutil.RequireRoot(t) // owners
	ctx, root := t.TempDir(), t.TempDir()
	writeTree(t, ctx, map[string]string{"src/a": "a", "src/sub/b": "b"})
	for dir, mode := range map[string]os.FileMode{"tmp": os.ModeSticky | 0o777, "tmp/sub": 0o700, "home/u": 0o700} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(root, dir), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(root, dir), 1000, 1000); err != nil {
			t.Fatal(err)
		}
	}
	for _, dest := range []string{"/tmp/", "/home/u", "/new/"} {
		if _, err := Copy(context.Background(), ctx, []string{"src/"}, root, dest, Options{Policy: FromContext}); err != nil {
			t.Fatalf("Copy to %s: %v", dest, err)
		}
	}
	got := map[string]string{}
	for _, l := range listTree(t, root) {
		if f := strings.Fields(l); len(f) >= 3 && !strings.Contains(f[0], "/a") && !strings.HasSuffix(f[0], "/b") {
			got[f[0]] = f[1] + " " + f[2]
		}
	}
	want := map[string]string{
		"tmp": "dtrwxrwxrwx 1000:1000", "tmp/sub": "drwxr-xr-x 0:0",
		"home": "drwxr-xr-x 0:0", "home/u": "drwx------ 1000:1000", "home/u/sub": "drwxr-xr-x 0:0",
		"new": "drwxr-xr-x 0:0", "new/sub": "drwxr-xr-x 0:0",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("dirs after the copies (-want +got):\n%s", d)
	}
}

// TestIgnoreExceptionUnderAnIgnoredDir: "build" then "!build/keep.txt"
// in the ignore file keeps build/keep.txt, however the source is
// written, as docker's context transfer does: the copy copies it, and
// the cache hashes it, and nothing else of build/.
func TestIgnoreExceptionUnderAnIgnoredDir(t *testing.T) {
	testutil.RequireRoot(t) // owners 0:0
	ctx := t.TempDir()
	writeTree(t, ctx, map[string]string{
		".dockerignore":  "build\n!build/keep.txt\n",
		"build/keep.txt": "keep",
		"build/drop.txt": "drop",
		"build/sub/x":    "drop",
		"other.txt":      "other",
	})
	ignore, err := LoadIgnore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, source := range []string{".", "build/*"} {
		root := t.TempDir()
		if _, err := Copy(context.Background(), ctx, []string{source}, root, "/ctx/", Options{Policy: FromContext, Ignore: ignore}); err != nil {
			t.Fatalf("Copy %s: %v", source, err)
		}
		var kept []string
		for _, l := range listTree(t, root) {
			if f := strings.Fields(l); strings.Contains(f[0], "build") || strings.Contains(f[0], "keep") {
				kept = append(kept, f[0])
			}
		}
		want := []string{"ctx/build", "ctx/build/keep.txt"}
		if source != "." {
			want = []string{"ctx/keep.txt"}
		}
		if d := cmp.Diff(want, kept); d != "" {
			t.Errorf("copy of %s (-want +got):\n%s", source, d)
		}
	}
	got, _, err := ContextInputs(ctx, ignore, []string{"."}, "")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"", ".dockerignore", "build/keep.txt", "other.txt"}, got); d != "" {
		t.Errorf("inputs (-want +got):\n%s", d)
	}
}

// TestIgnoreWildcardException: "*" then "!**/*.go" keeps every .go file,
// also in dirs "*" excludes, as docker's context transfer does; in the
// copy and in the inputs the cache hashes alike.
func TestIgnoreWildcardException(t *testing.T) {
	testutil.RequireRoot(t) // owners 0:0
	ctx := t.TempDir()
	writeTree(t, ctx, map[string]string{
		".dockerignore": "*\n!**/*.go\n",
		"main.go":       "m",
		"src/a.go":      "a",
		"src/sub/b.go":  "b",
		"src/sub/c.txt": "drop",
		"docs/x.md":     "drop",
	})
	ignore, err := LoadIgnore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := ContextInputs(ctx, ignore, []string{"."}, "")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"", "main.go", "src/a.go", "src/sub/b.go"}, got); d != "" {
		t.Errorf("inputs (-want +got):\n%s", d)
	}
	root := t.TempDir()
	if _, err := Copy(context.Background(), ctx, []string{"."}, root, "/ctx/", Options{Policy: FromContext, Ignore: ignore}); err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, l := range listTree(t, root) {
		if f := strings.Fields(l); strings.HasSuffix(f[0], ".go") {
			files = append(files, f[0])
		}
	}
	if d := cmp.Diff([]string{"ctx/main.go", "ctx/src/a.go", "ctx/src/sub/b.go"}, files); d != "" {
		t.Errorf("copied (-want +got):\n%s", d)
	}
}

// TestContextSpecialFilesLeftOut: a socket and a FIFO in the build context
// (a dev server's socket, git's fsmonitor FIFO) are left out of a copy, as
// docker leaves them out, and listed for a warning; the rest is copied.
func TestContextSpecialFilesLeftOut(t *testing.T) {
	ctx, dst := t.TempDir(), t.TempDir()
	writeTree(t, ctx, map[string]string{"app/a.txt": "a"})
	if err := unix.Mkfifo(filepath.Join(ctx, "app", "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(ctx, "app", "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	inputs, left, err := ContextInputs(ctx, nil, []string{"."}, "/c/")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"", "app", "app/a.txt"}, inputs); d != "" {
		t.Errorf("inputs (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"app/fifo", "app/sock"}, left); d != "" {
		t.Errorf("left out (-want +got):\n%s", d)
	}
	if _, err := Copy(context.Background(), ctx, []string{"."}, dst, "/c/", Options{Policy: FromContext}); err != nil {
		t.Fatalf("copy of a context holding a socket and a FIFO: %v", err)
	}
	entries, err := os.ReadDir(filepath.Join(dst, "c", "app"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "a.txt" {
		t.Errorf("copied %v, want only a.txt", entries)
	}
}
