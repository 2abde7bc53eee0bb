package fscopy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// IgnoreFile is the name of the file at the root of a build context that
// excludes files from copies, in the syntax of .dockerignore.
const IgnoreFile = ".strataignore"

// Ignore is a build context's ignore file: patterns that exclude entries
// from copies. A nil *Ignore excludes nothing.
type Ignore struct {
	// File is the ignore file's name, for messages.
	File string
	pm   *patternmatcher.PatternMatcher
}

// LoadIgnore reads CONTEXT/.strataignore; a context without one ignores
// nothing (nil).
func LoadIgnore(contextDir string) (*Ignore, error) {
	p := filepath.Join(contextDir, IgnoreFile)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &Ignore{File: IgnoreFile, pm: pm}, nil
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
