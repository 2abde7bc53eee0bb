package inputfile

import (
	"fmt"
	"path/filepath"
	"strings"
)

// InsideDir returns an error unless path, its symbolic links followed,
// lies inside dir (dir's own links followed too). It reads nothing but
// directory entries and links: use it before Read for a file that must
// come from the build context, such as a recipe or an ignore file found
// there rather than named by the user, so that a strata.yaml linking to
// /etc/shadow is refused without being opened.
func InsideDir(path, dir string) error {
	realDir, err := resolve(dir)
	if err != nil {
		return err
	}
	realPath, err := resolve(path)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(realDir, realPath)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("%s resolves to %s, which is outside %s", path, realPath, dir)
	}
	return nil
}

// resolve returns p absolute, its symbolic links followed.
func resolve(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", p, err)
	}
	return real, nil
}
