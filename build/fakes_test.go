package build

// Fakes for the orchestration tests: the step loop with a fake runner and
// a fake mounter (the step's rootfs is its upper dir), so they run without
// root. The real runner and mounter are tested for real in build/sandbox,
// layers and the end-to-end tests of cmd/strata.

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stratabuild/strata/build/chain"
	"github.com/stratabuild/strata/build/sandbox"
	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/recipe"
)

// fakeMounter stands in for overlay without root: the merged view is a
// dir holding hardlinks to the lower dirs' files (bottom first, so upper
// layers win), and Unmount moves every file made there (a new inode) into
// the upper dir. Steps can add files and read their lowers; deletions are
// not modelled.
type fakeMounter struct {
	mu      sync.Mutex
	mounted int
}

type fakeMount struct {
	m             *fakeMounter
	target, upper string
	once          sync.Once
	err           error
}

func (f *fakeMounter) Mount(_ context.Context, o layers.MountOptions) (chain.Mounted, error) {
	for i := len(o.Lowers) - 1; i >= 0; i-- {
		if err := linkTree(o.Lowers[i], o.Target); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	f.mounted++
	f.mu.Unlock()
	return &fakeMount{m: f, target: o.Target, upper: o.Upper}, nil
}

func (m *fakeMount) Target() string { return m.target }

func (m *fakeMount) Unmount() error {
	m.once.Do(func() {
		m.err = filepath.WalkDir(m.target, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(m.target, p)
			if fi.Sys().(*syscall.Stat_t).Nlink == 1 { // made by the step
				dst := filepath.Join(m.upper, rel)
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					return err
				}
				return os.Rename(p, dst)
			}
			return nil
		})
		if err := os.RemoveAll(m.target); err == nil {
			_ = os.Mkdir(m.target, 0o700)
		}
		m.m.mu.Lock()
		m.m.mounted--
		m.m.mu.Unlock()
	})
	return m.err
}

// linkTree hardlinks the files of src into dst, making dirs.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		_ = os.Remove(target)
		return os.Link(p, target)
	})
}

// fakeRunner interprets a tiny command language: "write PATH TEXT" creates
// a file, "fail N TEXT" prints TEXT and exits N, "noop" does nothing,
// "sleep MS" waits, "block" waits until the build is cancelled. It records
// every run and when each started and ended.
type fakeRunner struct {
	mu    sync.Mutex
	runs  []sandbox.Options
	spans []span
}

type span struct {
	cmd        string
	start, end time.Time
	err        error
}

func (f *fakeRunner) Run(ctx context.Context, o sandbox.Options) error {
	f.mu.Lock()
	f.runs = append(f.runs, o)
	f.mu.Unlock()
	sp := span{cmd: o.Args[len(o.Args)-1], start: time.Now()}
	sp.err = f.do(ctx, o)
	sp.end = time.Now()
	f.mu.Lock()
	f.spans = append(f.spans, sp)
	f.mu.Unlock()
	return sp.err
}

func (f *fakeRunner) do(ctx context.Context, o sandbox.Options) error {
	cmd := o.Args[len(o.Args)-1]
	cmd, _, _ = strings.Cut(cmd, " ;; ") // a note changes the step, not what it does
	fields := strings.SplitN(cmd, " ", 3)
	switch fields[0] {
	case "write":
		p := filepath.Join(o.Rootfs, fields[1])
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, []byte(fields[2]+"\n"), 0o644)
	case "fail":
		o.Stdout.Write([]byte(fields[2] + "\n"))
		return &sandbox.ExitError{Status: int(fields[1][0] - '0')}
	case "noop":
		return nil
	case "sleep":
		ms, _ := strconv.Atoi(fields[1])
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	case "block":
		<-ctx.Done()
		return ctx.Err()
	case "fail-on": // fail-on ARCH ${TARGETARCH}: fail there, block elsewhere
		if a, b, _ := strings.Cut(fields[1]+" "+fields[2], " "); a == b {
			return &sandbox.ExitError{Status: 3}
		}
		<-ctx.Done()
		return ctx.Err()
	}
	return errors.New("fake runner: unknown command " + cmd)
}

func buildFake(t *testing.T, yaml string, opts ...func(*Options)) (*Result, *fakeRunner, *fakeMounter, []Event, error) {
	t.Helper()
	ctxDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(ctxDir, "strata.yaml"), []byte(own(yaml)), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := recipe.Load(filepath.Join(ctxDir, "strata.yaml"))
	if err != nil {
		t.Fatalf("recipe: %v", err)
	}
	return buildIn(t, t.TempDir(), r, opts...)
}

// buildIn builds r on the state root root with the fakes.
func buildIn(t *testing.T, root string, r *recipe.Recipe, opts ...func(*Options)) (*Result, *fakeRunner, *fakeMounter, []Event, error) {
	t.Helper()
	runner, mounter := &fakeRunner{}, &fakeMounter{}
	var mu sync.Mutex
	var events []Event
	o := Options{Root: root, Compression: commit.Gzip}
	for _, f := range opts {
		f(&o)
	}
	res, err := Build(context.Background(), o, r, Deps{
		Runner: runner, Mounter: mounter, Progress: func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() },
	})
	if mounter.mounted != 0 {
		t.Errorf("%d mounts left after the build", mounter.mounted)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "mnt")); len(entries) > 0 {
		t.Errorf("mount points left behind: %v", entries)
	}
	return res, runner, mounter, events, err
}

// own gives the copy and file steps of a test recipe that say "owner:
// OWNER" the test's own uid:gid, so that the fakes run without root: only
// root can chown what a step writes to 0:0 (a real build is root, or root
// in its user namespace).
func own(yaml string) string {
	return strings.ReplaceAll(yaml, "OWNER", fmt.Sprintf("\"%d:%d\"", os.Getuid(), os.Getgid()))
}

// writeTree makes files under dir from "path": content (a recipe's OWNER
// made the test's own, see own).
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		if filepath.Base(p) == "strata.yaml" {
			content = own(content)
		}
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// tarPaths lists the entry names of a layer.
func tarPaths(t *testing.T, l v1.Layer) []string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h.Name)
	}
}

type tarEntry struct {
	body string
	mode int64
}

// tarEntries reads a layer's regular files and dirs by name.
func tarEntries(t *testing.T, l v1.Layer) map[string]tarEntry {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]tarEntry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		out[h.Name] = tarEntry{body: string(body), mode: h.Mode}
	}
}
