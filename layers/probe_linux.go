package layers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Probe tries, in a temp dir under dir, what a build does with overlay:
// mount one with the options Mount uses, delete a lower file (a whiteout)
// and replace a lower dir (an opaque dir) through it, and unmount. It
// returns nil when both show in the upper dir as Diff expects them. A
// rootless build calls it before anything runs: overlay in a user
// namespace needs Linux 5.11 or later and a filesystem under dir that
// supports it.
func Probe(ctx context.Context, dir string) (err error) {
	tmp, err := os.MkdirTemp(dir, ".overlay-probe-")
	if err != nil {
		return fmt.Errorf("probing overlay: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(tmp); rerr != nil && err == nil {
			err = fmt.Errorf("probing overlay: %w", rerr)
		}
	}()
	p := func(name string) string { return filepath.Join(tmp, name) }
	for _, d := range []string{"lower", "lower/dir", "upper", "work", "merged"} {
		if err := os.Mkdir(p(d), 0o755); err != nil {
			return fmt.Errorf("probing overlay: %w", err)
		}
	}
	for _, f := range []string{"lower/file", "lower/dir/old"} {
		if err := os.WriteFile(p(f), nil, 0o644); err != nil {
			return fmt.Errorf("probing overlay: %w", err)
		}
	}
	m, err := Mount(ctx, MountOptions{Lowers: []string{p("lower")}, Upper: p("upper"), Work: p("work"), Target: p("merged")})
	if err != nil {
		return err
	}
	opErr := errors.Join(os.Remove(p("merged/file")), os.RemoveAll(p("merged/dir")), os.Mkdir(p("merged/dir"), 0o755))
	if err := errors.Join(opErr, m.Unmount()); err != nil {
		return fmt.Errorf("probing overlay: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(p("upper/file"), &st); err != nil {
		return fmt.Errorf("probing overlay: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		return errors.New("probing overlay: deleting a lower file left no 0/0 whiteout in the upper dir")
	}
	opaque, err := isOpaque(p("upper/dir"))
	if err != nil {
		return fmt.Errorf("probing overlay: %w", err)
	}
	if !opaque {
		return fmt.Errorf("probing overlay: a replaced dir is not marked %s in the upper dir", ovl().opaque)
	}
	return nil
}
