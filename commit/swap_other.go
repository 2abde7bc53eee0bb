//go:build !linux

package commit

import (
	"errors"
	"fmt"
	"os"
)

// swapDir puts newDir at dir: the old dir is moved aside into newDir's
// place first, so newDir then holds the old content. Not atomic: dir is
// briefly missing.
func swapDir(newDir, dir string) error {
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return os.Rename(newDir, dir)
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s %w", dir, errNotDir)
	}
	aside := newDir + ".old"
	if err := os.Rename(dir, aside); err != nil {
		return err
	}
	if err := os.Rename(newDir, dir); err != nil {
		return errors.Join(err, os.Rename(aside, dir))
	}
	return os.Rename(aside, newDir)
}
