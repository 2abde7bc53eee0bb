package fscopy

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
)

func TestIgnoreFileSyntaxErrorHasLine(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, IgnoreFile), "# comment\n*.log\nsrc/[abc\n\n!keep.log\n")
	_, err := LoadIgnore(dir)
	if err == nil || !strings.Contains(err.Error(), ".strataignore:3: bad pattern \"src/[abc\"") {
		t.Errorf("LoadIgnore = %v, want the bad pattern at line 3", err)
	}
}

func TestDockerIgnoreReadWithoutStrataIgnore(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, DockerIgnoreFile), "*.log\n!keep.log\n")
	ig, err := LoadIgnore(dir)
	if err != nil || ig == nil || ig.File != DockerIgnoreFile {
		t.Fatalf("LoadIgnore = %+v, %v; want .dockerignore", ig, err)
	}
	if !ig.Match("a.log") || ig.Match("keep.log") || ig.Match("a.go") {
		t.Errorf("matches: a.log %v keep.log %v a.go %v", ig.Match("a.log"), ig.Match("keep.log"), ig.Match("a.go"))
	}
	writeFile(t, filepath.Join(dir, IgnoreFile), "*.go\n")
	if ig, err = LoadIgnore(dir); err != nil || ig.File != IgnoreFile || ig.Match("a.log") {
		t.Errorf("with both files: %+v, %v; want .strataignore alone", ig, err)
	}
}

func TestIgnoreFileMustStayInContext(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(outside, "secret"), "*\n")
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, IgnoreFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIgnore(dir); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("LoadIgnore through a symlink out of the context = %v", err)
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestIgnoreMatcherSameAsParentMatches: the matcher that remembers dirs
// answers as MatchesOrParentMatches does, for random patterns (globs,
// "**", exclusions, dir prefixes) and random paths asked in random order,
// also when it forgets (a small memory).
func TestIgnoreMatcherSameAsParentMatches(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	elems := []string{"a", "b", "c", "a.log", "*", "**", "?", "*.log", "[ab]", "node_modules"}
	names := []string{"a", "b", "c", "a.log", "b.log", "node_modules", "x"}
	for round := range 300 {
		var patterns []string
		for range 1 + rnd.IntN(6) {
			var parts []string
			for range 1 + rnd.IntN(3) {
				parts = append(parts, elems[rnd.IntN(len(elems))])
			}
			p := strings.Join(parts, "/")
			switch rnd.IntN(4) {
			case 0:
				p = "!" + p
			case 1:
				p = "/" + p
			}
			patterns = append(patterns, p)
		}
		pm, err := patternmatcher.New(patterns)
		if err != nil {
			continue
		}
		m := newMatcher(pm)
		if m == nil {
			t.Fatalf("patterns %q: no matcher", patterns)
		}
		if round%2 == 0 {
			m.max = 2 // forgets all the time
		}
		for range 60 {
			var parts []string
			for range 1 + rnd.IntN(5) {
				parts = append(parts, names[rnd.IntN(len(names))])
			}
			rel := strings.Join(parts, "/")
			want, err := pm.MatchesOrParentMatches(rel)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.match(rel); got != want {
				t.Errorf("patterns %q, path %s: %v, want %v", patterns, rel, got, want)
			}
		}
	}
}

// TestIgnoreMatcherLeavesOddPatterns: a pattern whose text parses again
// as another is left to the PatternMatcher.
func TestIgnoreMatcherLeavesOddPatterns(t *testing.T) {
	for _, p := range []string{"!!x", "!./x"} {
		pm, err := patternmatcher.New([]string{p})
		if err != nil {
			t.Fatal(err)
		}
		if newMatcher(pm) != nil {
			t.Errorf("%q: a matcher, want none", p)
		}
	}
}
