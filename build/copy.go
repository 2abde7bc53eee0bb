package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// IgnoreFile is the name of the file at the root of a build context that
// excludes files from copies, in the syntax of .dockerignore.
const IgnoreFile = ".strataignore"

// copySpec is one resolved `copy` step from the build context.
type copySpec struct {
	Sources []string // relative to the context; globs allowed
	Dest    string   // absolute in the rootfs; a trailing "/" means "into this dir"
	UID     int      // owner of everything written (0 unless the step says)
	GID     int
	Mode    *os.FileMode // nil: 0755 for dirs and executables, 0644 for other files
	ModTime *time.Time   // nil keeps the source's mtime
}

// loadIgnore reads CONTEXT/.strataignore; a context without one ignores nothing.
func loadIgnore(contextDir string) (*patternmatcher.PatternMatcher, error) {
	f, err := os.Open(path.Join(contextDir, IgnoreFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", IgnoreFile, err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", IgnoreFile, err)
	}
	return pm, nil
}

func ignored(pm *patternmatcher.PatternMatcher, rel string) bool {
	if pm == nil || rel == "." {
		return false
	}
	ok, err := pm.MatchesOrParentMatches(rel)
	return err == nil && ok
}

// copyFromContext copies files of the build context into rootfs as a docker
// COPY does: a directory source copies its contents, several sources or a
// glob need a destination dir, and nothing outside the context is ever read —
// a source that leaves it through ".." or a symlink is an error. Modes are
// normalised (0755/0644 by the exec bit) so that a checkout's umask never
// changes a layer. It returns the number of entries written.
func copyFromContext(ctx context.Context, contextDir string, ignore *patternmatcher.PatternMatcher, rootfs string, s copySpec) (int, error) {
	src, err := os.OpenRoot(contextDir)
	if err != nil {
		return 0, fmt.Errorf("opening build context: %w", err)
	}
	defer src.Close()
	dst, err := os.OpenRoot(rootfs)
	if err != nil {
		return 0, err
	}
	defer dst.Close()

	matches, globbed, err := resolveSources(src, ignore, s.Sources)
	if err != nil {
		return 0, err
	}

	c := &copier{ctx: ctx, src: src, dst: dst, ignore: ignore, spec: s, links: map[[2]uint64]string{}}
	into := strings.HasSuffix(s.Dest, "/") || len(matches) > 1 || globbed
	if len(matches) > 1 && !strings.HasSuffix(s.Dest, "/") {
		return 0, fmt.Errorf("copy of several sources needs a destination dir ending in /, not %q", s.Dest)
	}
	dest := path.Clean(s.Dest)
	for _, m := range matches {
		fi, err := src.Stat(m)
		if err != nil {
			return c.n, fmt.Errorf("copy source %q: %w", m, contextErr(err))
		}
		if fi.IsDir() {
			if err := c.tree(m, dest); err != nil {
				return c.n, err
			}
			continue
		}
		target := dest
		if st, err := dst.Stat(rel(dest)); into || (err == nil && st.IsDir()) {
			target = path.Join(dest, path.Base(m))
		}
		if err := c.entry(m, target, fi); err != nil {
			return c.n, err
		}
	}
	return c.n, c.finish()
}

// contextInputs lists what a copy from the context reads: every matched
// path and, under a matched dir, every entry not excluded by the ignore
// file; relative, slash-separated, sorted. The cache hashes these.
func contextInputs(contextDir string, ignore *patternmatcher.PatternMatcher, sources []string) ([]string, error) {
	src, err := os.OpenRoot(contextDir)
	if err != nil {
		return nil, fmt.Errorf("opening build context: %w", err)
	}
	defer src.Close()
	matches, _, err := resolveSources(src, ignore, sources)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, m := range matches {
		err := fs.WalkDir(src.FS(), m, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return contextErr(err)
			}
			if p != m && ignored(ignore, p) {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("copy source %q: %w", m, err)
		}
	}
	sort.Strings(out)
	return out, nil
}

// resolveSources expands a copy's sources inside the context: globs are
// matched, excluded paths dropped, and a path leaving the context refused.
func resolveSources(src *os.Root, ignore *patternmatcher.PatternMatcher, sources []string) (matches []string, globbed bool, err error) {
	for _, p := range sources {
		clean := path.Clean(strings.TrimPrefix(p, "./"))
		if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
			return nil, false, fmt.Errorf("copy source %q is outside the build context", p)
		}
		if !strings.ContainsAny(clean, `*?[\`) {
			if ignored(ignore, clean) {
				return nil, false, fmt.Errorf("copy source %q is excluded by %s", p, IgnoreFile)
			}
			matches = append(matches, clean)
			continue
		}
		globbed = true
		found, err := fs.Glob(src.FS(), clean)
		if err != nil {
			return nil, false, fmt.Errorf("copy source %q: %w", p, err)
		}
		n := 0
		for _, m := range found {
			if !ignored(ignore, m) {
				matches = append(matches, m)
				n++
			}
		}
		if n == 0 {
			return nil, false, fmt.Errorf("copy source %q matches no file in the build context", p)
		}
	}
	return matches, globbed, nil
}

// contextErr names the usual cause of an os.Root error: a symlink that
// points out of the context.
func contextErr(err error) error {
	if err != nil && strings.Contains(err.Error(), "escapes") {
		return fmt.Errorf("it leaves the build context (through \"..\" or a symlink): %w", err)
	}
	return err
}

// rel turns an absolute rootfs path into the name os.Root wants.
func rel(p string) string {
	r := strings.TrimPrefix(path.Clean(p), "/")
	if r == "" {
		return "."
	}
	return r
}

type copier struct {
	ctx    context.Context
	src    *os.Root
	dst    *os.Root
	ignore *patternmatcher.PatternMatcher
	spec   copySpec
	links  map[[2]uint64]string // (dev, ino) of a multiply-linked source → its first destination
	dirs   []dirTime            // directories whose mtime is set last
	n      int
}

type dirTime struct {
	name string
	mt   time.Time
}

// tree copies the contents of the context dir srcDir into the rootfs dir dest.
func (c *copier) tree(srcDir, dest string) error {
	return fs.WalkDir(c.src.FS(), srcDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("copy source %q: %w", p, contextErr(err))
		}
		if ignored(c.ignore, p) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sub := strings.TrimPrefix(strings.TrimPrefix(p, srcDir), "/")
		if srcDir == "." {
			sub = p
			if p == "." {
				sub = ""
			}
		}
		return c.entry(p, path.Join(dest, sub), fi)
	})
}

func (c *copier) mode(fi fs.FileInfo) os.FileMode {
	if c.spec.Mode != nil {
		return *c.spec.Mode
	}
	if fi.IsDir() || fi.Mode()&0o100 != 0 {
		return 0o755
	}
	return 0o644
}

func (c *copier) mtime(fi fs.FileInfo) time.Time {
	if c.spec.ModTime != nil {
		return *c.spec.ModTime
	}
	return fi.ModTime()
}

// mkdirAll creates the missing parents of name, owned like the copied files.
func (c *copier) mkdirAll(name string) error {
	if name == "/" || name == "." {
		return nil
	}
	if fi, err := c.dst.Stat(rel(name)); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("copy destination %s: not a directory", name)
		}
		return nil
	}
	if err := c.mkdirAll(path.Dir(name)); err != nil {
		return err
	}
	if err := c.dst.Mkdir(rel(name), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating %s: %w", name, err)
	}
	return c.dst.Lchown(rel(name), c.spec.UID, c.spec.GID)
}

// entry writes one source entry (file, dir, symlink, hardlink) at target.
func (c *copier) entry(srcPath, target string, fi fs.FileInfo) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	if err := c.mkdirAll(path.Dir(target)); err != nil {
		return err
	}
	name := rel(target)
	c.n++
	switch {
	case fi.IsDir():
		if err := c.dst.Mkdir(name, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("creating %s: %w", target, err)
		}
		if err := c.dst.Chmod(name, c.mode(fi)); err != nil {
			return err
		}
		c.dirs = append(c.dirs, dirTime{name, c.mtime(fi)})
		return c.dst.Lchown(name, c.spec.UID, c.spec.GID)
	case fi.Mode()&fs.ModeSymlink != 0:
		link, err := c.src.Readlink(srcPath)
		if err != nil {
			return err
		}
		if err := c.replace(name); err != nil {
			return err
		}
		if err := c.dst.Symlink(link, name); err != nil {
			return fmt.Errorf("creating %s: %w", target, err)
		}
		return c.dst.Lchown(name, c.spec.UID, c.spec.GID)
	case fi.Mode().IsRegular():
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			key := [2]uint64{st.Dev, st.Ino}
			if first, seen := c.links[key]; seen {
				if err := c.replace(name); err != nil {
					return err
				}
				return c.dst.Link(first, name)
			}
			c.links[key] = name
		}
		return c.file(srcPath, target, fi)
	default:
		return fmt.Errorf("copy source %q: unsupported file type %s", srcPath, fi.Mode().Type())
	}
}

// replace removes a non-directory already at name so that a link can take its place.
func (c *copier) replace(name string) error {
	fi, err := c.dst.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("copy destination /%s is a directory", name)
	}
	return c.dst.Remove(name)
}

func (c *copier) file(srcPath, target string, fi fs.FileInfo) error {
	name := rel(target)
	if st, err := c.dst.Lstat(name); err == nil && st.IsDir() {
		return fmt.Errorf("copy destination %s is a directory; end it with / to copy into it", target)
	} else if err == nil && st.Mode()&fs.ModeSymlink != 0 {
		if err := c.dst.Remove(name); err != nil {
			return err
		}
	}
	in, err := c.src.Open(srcPath)
	if err != nil {
		return fmt.Errorf("copy source %q: %w", srcPath, contextErr(err))
	}
	defer in.Close()
	out, err := c.dst.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("creating %s: %w", target, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", srcPath, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := c.dst.Lchown(name, c.spec.UID, c.spec.GID); err != nil {
		return err
	}
	// chmod after chown: chown clears setuid/setgid bits.
	if err := c.dst.Chmod(name, c.mode(fi)); err != nil {
		return err
	}
	mt := c.mtime(fi)
	return c.dst.Chtimes(name, mt, mt)
}

// finish sets directory mtimes, deepest first, once their contents are written.
func (c *copier) finish() error {
	for i := len(c.dirs) - 1; i >= 0; i-- {
		d := c.dirs[i]
		if err := c.dst.Chtimes(d.name, d.mt, d.mt); err != nil {
			return err
		}
	}
	return nil
}
