package fscopy

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/stratabuild/strata/internal/inputfile"
)

// IgnoreFile is the name of the file at the root of a build context that
// excludes files from copies, in the syntax of .dockerignore. Without one,
// a .dockerignore is read instead, as buildah reads .containerignore.
const IgnoreFile = ".strataignore"

// DockerIgnoreFile is read when the context has no IgnoreFile.
const DockerIgnoreFile = ".dockerignore"

// maxIgnore bounds an ignore file's size.
const maxIgnore = 1 << 20

// Ignore is a build context's ignore file: patterns that exclude entries
// from copies. A nil *Ignore excludes nothing.
type Ignore struct {
	// File is the ignore file's name, for messages.
	File string
	pm   *patternmatcher.PatternMatcher // nil: no ignore file
	// out are context-relative dirs left out whatever the file says (a
	// state root inside the context); see Without.
	out []string
}

// Without returns ig that also leaves out the context-relative dir rel
// and everything below it: a build's state dir inside its context, which
// the build writes as it copies (a copy of the context would copy the
// step's own upper dir into itself).
func (ig *Ignore) Without(rel string) *Ignore {
	c := &Ignore{}
	if ig != nil {
		*c = *ig
	}
	c.out = append(slices.Clip(c.out), strings.Trim(rel, "/"))
	return c
}

// left reports whether rel is one of the dirs Without left out, or below.
func (ig *Ignore) left(rel string) bool {
	rel = strings.Trim(rel, "/")
	for _, o := range ig.out {
		if rel == o || strings.HasPrefix(rel, o+"/") {
			return true
		}
	}
	return false
}

// By names what leaves rel out, for messages: the ignore file, or the
// state dir.
func (ig *Ignore) By(rel string) string {
	if ig.left(rel) {
		return "the build's state dir (--root)"
	}
	return ig.File
}

// LoadIgnore reads CONTEXT/.strataignore, else CONTEXT/.dockerignore; a
// context with neither ignores nothing (nil). The file must be a regular
// file inside the context; a bad pattern is reported with its line.
func LoadIgnore(contextDir string) (*Ignore, error) {
	for _, name := range []string{IgnoreFile, DockerIgnoreFile} {
		p := filepath.Join(contextDir, name)
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := inputfile.InsideDir(p, contextDir); err != nil {
			return nil, err
		}
		data, err := inputfile.Read(p, inputfile.Options{Max: maxIgnore, What: "ignore file"})
		if err != nil {
			return nil, err
		}
		pm, err := parseIgnore(p, data)
		if err != nil {
			return nil, err
		}
		return &Ignore{File: name, pm: pm}, nil
	}
	return nil, nil
}

// parseIgnore reads the patterns of an ignore file as docker does,
// reporting every bad one as FILE:LINE.
func parseIgnore(file string, data []byte) (*patternmatcher.PatternMatcher, error) {
	var patterns []string
	var errs []error
	for i, line := range bytes.Split(data, []byte("\n")) {
		got, err := ignorefile.ReadAll(bytes.NewReader(line))
		if err == nil && len(got) == 1 {
			_, err = patternmatcher.New(got)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: bad pattern %q: %w", file, i+1, strings.TrimSpace(string(line)), err))
			continue
		}
		patterns = append(patterns, got...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return patternmatcher.New(patterns)
}

// Match reports whether the context-relative path rel (slash-separated) is
// excluded, itself or through a parent.
func (ig *Ignore) Match(rel string) bool {
	if ig == nil || rel == "." || rel == "" {
		return false
	}
	if ig.left(rel) {
		return true
	}
	if ig.pm == nil {
		return false
	}
	ok, err := ig.pm.MatchesOrParentMatches(strings.TrimPrefix(rel, "/"))
	return err == nil && ok
}

// Skips reports whether a directory rel that Match excludes can be left
// out whole: no exception ("!" pattern) may name a path below it. One
// that may keeps the directory walked, its entries matched one by one, as
// docker's context transfer (fsutil) does: "build" then "!build/keep.txt"
// keeps build/keep.txt, and an exception with a wildcard before its last
// element ("*" then "!**/*.go") keeps every directory walked.
func (ig *Ignore) Skips(rel string) bool {
	if ig == nil || ig.left(rel) || ig.pm == nil || !ig.pm.Exclusions() {
		return true
	}
	prefix := strings.TrimPrefix(rel, "/") + "/"
	for _, p := range ig.pm.Patterns() {
		if !p.Exclusion() {
			continue
		}
		s := p.String()
		if strings.ContainsAny(strings.TrimSuffix(strings.TrimSuffix(s, "/**"), "/*"), `*?[]^\`) {
			return false
		}
		if strings.HasPrefix(s+"/", prefix) {
			return false
		}
	}
	return true
}
