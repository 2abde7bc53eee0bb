package commit

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// swapDir puts the directory newDir at path dir in one atomic step: if dir
// exists the two are exchanged (renameat2 RENAME_EXCHANGE), so newDir then
// holds the old content; otherwise newDir is renamed to dir.
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
	if err := unix.Renameat2(unix.AT_FDCWD, newDir, unix.AT_FDCWD, dir, unix.RENAME_EXCHANGE); err != nil {
		return fmt.Errorf("exchanging %s and %s: %w", newDir, dir, err)
	}
	return nil
}
