package fscopy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
