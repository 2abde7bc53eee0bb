package fscopy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/stratabuild/strata/internal/rootfs"
)

// clean makes p a root-relative, slash-separated path ("" is the root).
func clean(p string) string {
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}

func isGlob(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// match expands sources into root-relative paths: globs are matched (for
// FromContext, ignored entries dropped), a FromContext source that leaves
// the context lexically is refused.
func match(srcRoot string, sources []string, o Options) (matches []string, err error) {
	for _, s := range sources {
		if o.Policy == FromContext {
			c := path.Clean(strings.TrimPrefix(s, "./"))
			if path.IsAbs(c) || c == ".." || strings.HasPrefix(c, "../") {
				return nil, fmt.Errorf("copy source %q is outside the build context", s)
			}
		}
		rel := clean(s)
		if !isGlob(rel) {
			if o.Policy == FromContext && o.Ignore.Match(rel) {
				return nil, fmt.Errorf("copy source %q is excluded by %s", s, o.Ignore.By(rel))
			}
			matches = append(matches, rel)
			continue
		}
		found, err := glob(srcRoot, rel, o.mode())
		if err != nil {
			return nil, fmt.Errorf("copy source %q: %w", s, err)
		}
		n := 0
		for _, m := range found {
			if o.Policy != FromContext || !o.Ignore.Match(m) {
				matches = append(matches, m)
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("copy source %q matches nothing%s", s, o.where())
		}
	}
	return matches, nil
}

func (o Options) mode() rootfs.Mode {
	if o.Policy == FromContext {
		return rootfs.Confine
	}
	return rootfs.Clamp
}

func (o Options) where() string {
	if o.Policy == FromContext {
		return " in the build context"
	}
	return ""
}

// glob matches a root-relative pattern inside root, component by
// component, resolving the non-pattern parts inside the root.
func glob(root, pattern string, m rootfs.Mode) ([]string, error) {
	dir, file := path.Split(pattern)
	dir = strings.TrimSuffix(dir, "/")
	dirs := []string{dir}
	if isGlob(dir) {
		var err error
		if dirs, err = glob(root, dir, m); err != nil {
			return nil, err
		}
	}
	var out []string
	for _, d := range dirs {
		host, err := rootfs.Resolve(root, d, m)
		if err != nil {
			continue
		}
		entries, err := os.ReadDir(host)
		if err != nil {
			continue
		}
		for _, e := range entries {
			ok, err := path.Match(file, e.Name())
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, path.Join(d, e.Name()))
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// leadsToIgnored is the error of a source (a symlink) that leads to what
// the ignore file leaves out: nothing would be copied (docker's context
// transfer leaves the link dangling, and its COPY fails).
func leadsToIgnored(to string, ignore *Ignore) error {
	return fmt.Errorf("it leads to %s, which %s leaves out", to, ignore.By(to))
}

// sourceErr names the usual causes of a source that cannot be read.
func sourceErr(src string, o Options, err error) error {
	switch {
	case errors.Is(err, rootfs.ErrEscapes):
		return fmt.Errorf("copy source %q: it leaves the build context (through \"..\" or a symlink)", src)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("copy source %q does not exist%s", src, o.where())
	}
	return fmt.Errorf("copy source %q: %w", src, err)
}

// checkDest refuses a copy of several sources, or of a glob matching
// several, to a dest not ending in "/" (a glob matching one file may copy
// it to a file name, as docker's COPY target/*.jar app.jar).
func checkDest(sources, matches []string, dest string) error {
	if strings.HasSuffix(dest, "/") || len(sources) <= 1 && len(matches) <= 1 {
		return nil
	}
	if len(sources) == 1 {
		return fmt.Errorf("copy source %q matches %d files: a copy of several needs a destination dir ending in /, not %q", sources[0], len(matches), dest)
	}
	return fmt.Errorf("copying several sources needs a destination dir ending in /, not %q", dest)
}

// ContextInputs lists what a FromContext copy of sources reads: every
// matched path and, under a matched dir, every entry not excluded by the
// ignore file; context-relative, slash-separated, sorted. The cache hashes
// these. Sockets, FIFOs and devices are left out of the copy (see
// Special): they are in left, not in inputs. Every source problem is
// reported, not only the first. A dest that is not "" is checked as Copy
// checks it (several sources, or a glob matching several, need one ending
// in "/"), before anything runs.
func ContextInputs(contextDir string, ignore *Ignore, sources []string, dest string) (inputs, left []string, err error) {
	o := Options{Policy: FromContext, Ignore: ignore}
	seen := map[string]bool{}
	var all []string
	var errs []error
	for _, s := range sources {
		matches, err := match(contextDir, []string{s}, o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		all = append(all, matches...)
		for _, m := range matches {
			if err := walkContext(contextDir, m, o, func(rel string, special bool) {
				switch {
				case seen[rel]:
				case special:
					left = append(left, rel)
				default:
					inputs = append(inputs, rel)
				}
				seen[rel] = true
			}); err != nil {
				errs = append(errs, sourceErr(s, o, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	if dest != "" {
		if err := checkDest(sources, all, dest); err != nil {
			return nil, nil, err
		}
	}
	sort.Strings(inputs)
	sort.Strings(left)
	return inputs, left, nil
}

// Special reports whether a file of mode m is one a copy from the build
// context leaves out, as docker's context transfer does: a socket, a FIFO
// or a device (a dev server's socket, git's fsmonitor FIFO).
func Special(m fs.FileMode) bool {
	return m&(fs.ModeSocket|fs.ModeNamedPipe|fs.ModeDevice|fs.ModeCharDevice) != 0
}

// walkContext calls visit with the context-relative path of m and, if m
// is a dir, of every entry below it that the ignore file keeps, and
// whether it is Special. m is resolved inside the context (a symlink
// leaving it is an error); where that leads elsewhere (m is a symlink, or
// under one), what it leads to is visited too: a copy copies that, not
// the link.
func walkContext(contextDir, m string, o Options, visit func(rel string, special bool)) error {
	host, err := rootfs.Resolve(contextDir, m, rootfs.Confine)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(host)
	if err != nil {
		return err
	}
	base, err := filepath.Rel(contextDir, host)
	if err != nil {
		return err
	}
	to := clean(filepath.ToSlash(base))
	visit(m, to == m && Special(fi.Mode()))
	if to != m {
		if o.Ignore.Match(to) && o.Ignore.Skips(to) {
			return leadsToIgnored(to, o.Ignore)
		}
		visit(to, Special(fi.Mode()))
	}
	return filepath.WalkDir(host, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == host {
			return err
		}
		sub, _ := filepath.Rel(host, p)
		rel := filepath.ToSlash(filepath.Join(base, sub))
		if o.Ignore.Match(rel) {
			if d.IsDir() && o.Ignore.Skips(rel) {
				return fs.SkipDir
			}
			return nil
		}
		visit(path.Join(m, filepath.ToSlash(sub)), Special(d.Type()))
		return nil
	})
}
