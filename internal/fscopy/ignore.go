package fscopy

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
	pm   *patternmatcher.PatternMatcher
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
	if ig == nil || !ig.pm.Exclusions() {
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
