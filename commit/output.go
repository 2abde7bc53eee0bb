package commit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/stratabuild/strata/internal/inputfile"
	"github.com/stratabuild/strata/internal/owner"
)

// WriteDockerArchive writes img as a `docker save` tarball named by tags
// (none: an untagged image). It checks file as CheckDockerDest does,
// removes the temp files that killed writers left beside it
// (CleanStaleTemps) and creates its missing parent directories. The
// tarball is written to a temp file beside file, named with this
// process's pid, and renamed, so a failure leaves an existing file as it
// was. A symbolic link at file is followed: its target is replaced.
func WriteDockerArchive(ctx context.Context, file string, img v1.Image, tags []string) error {
	if err := writeDockerArchive(ctx, file, img, tags); err != nil {
		return fmt.Errorf("writing docker archive %s: %w", file, err)
	}
	return nil
}

func writeDockerArchive(ctx context.Context, file string, img v1.Image, tags []string) error {
	refs, err := archiveRefs(ctxImage(ctx, img), tags)
	if err != nil {
		return err
	}
	if err := CheckDockerDest(file); err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(file); err == nil {
		file = real
	}
	_ = CleanStaleTemps(file) // best effort: a temp left is no reason to fail
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	return replaceFile(file, func(f *os.File) error {
		return tarball.MultiRefWrite(refs, f)
	})
}

// CheckDockerDest returns an error if a docker archive cannot be written
// at file (see CheckFileDest). It writes nothing; call it before a build
// to fail early.
func CheckDockerDest(file string) error {
	return CheckFileDest(file, "the archive's file name", "image.tar")
}

// CheckFileDest returns an error if a file cannot be written at file:
// file is a directory or anything but a regular file (a device, a FIFO, a
// dangling link), or its parent neither exists nor can be created. The
// error asks for what (such as "the archive's file name"), suggesting
// example inside a directory given. It writes nothing.
func CheckFileDest(file, what, example string) error {
	fi, err := os.Stat(file)
	switch {
	case err == nil && fi.IsDir():
		return fmt.Errorf("%s is a directory; give %s, such as %s", file, what, filepath.Join(file, example))
	case err == nil && !fi.Mode().IsRegular():
		return fmt.Errorf("%s is %s, not a regular file; give %s", file, inputfile.Kind(fi.Mode()), what)
	case err == nil:
		return writableDir(filepath.Dir(file))
	case !absent(err):
		return err
	}
	if _, lerr := os.Lstat(file); lerr == nil {
		return fmt.Errorf("%s is a symbolic link to a missing file; remove it or give another file name", file)
	}
	return creatable(filepath.Dir(file))
}

// archiveRefs maps every tag to img. Without tags img is keyed by a digest
// reference, which ggcr writes with no RepoTags.
func archiveRefs(img v1.Image, tags []string) (map[name.Reference]v1.Image, error) {
	refs := map[name.Reference]v1.Image{}
	for _, t := range tags {
		tag, err := name.NewTag(t)
		if err != nil {
			return nil, fmt.Errorf("tag %q: %w", t, err)
		}
		refs[tag] = img
	}
	if len(refs) == 0 {
		d, err := img.Digest()
		if err != nil {
			return nil, err
		}
		ref, err := name.NewDigest("untagged@" + d.String())
		if err != nil {
			return nil, err
		}
		refs[ref] = img
	}
	return refs, nil
}

// ReplaceFile writes data as file the way outputs are written: through a
// temp beside it that CleanStaleTemps knows, synced, mode 0644, renamed
// over file; a reader sees the old file or the whole new one.
func ReplaceFile(file string, data []byte) error {
	return replaceFile(file, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// replaceFile writes file through write on a temp file in the same
// directory (see createTemp), syncs it and renames it over file, then
// syncs the directory.
func replaceFile(file string, write func(*os.File) error) error {
	if err := renameSynced(file, write); err != nil {
		return err
	}
	return syncDir(filepath.Dir(file))
}

// renameSynced is replaceFile but for the sync of the directory, left to
// the caller: one syncDir after writing several files into a directory
// makes all their renames durable (each sync is a journal commit).
func renameSynced(file string, write func(*os.File) error) (err error) {
	f, err := createTemp(file)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), file)
}

// syncDir makes the entries of dir (a rename into it) durable, where the
// file system can sync a dir.
func syncDir(dir string) error {
	if err := syncPath(dir); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}

// syncPath makes what is at path durable: a file's content, a dir's
// entries.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	return nil
}

// absent reports whether err says a path does not exist, or cannot
// because one of its parents is not a directory.
func absent(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// creatable returns an error unless dir exists as a directory that can be
// written to, or could be created: its nearest existing ancestor is one.
func creatable(dir string) error {
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		switch {
		case err == nil && fi.IsDir():
			return writableDir(p)
		case err == nil:
			return fmt.Errorf("cannot create %s: %s is %s, not a directory", dir, p, inputfile.Kind(fi.Mode()))
		case !absent(err):
			return err
		}
		if parent := filepath.Dir(p); parent == p {
			return fmt.Errorf("cannot create %s: no existing parent", dir)
		}
	}
}

// Temp files and dirs beside a destination are named .NAME.tmp-OWNER-RANDOM,
// OWNER the writer's owner.ID (its pid, and pid namespace): it lets
// CleanStaleTemps tell a temp a killed writer left from one a live writer
// is still writing.
var tempRe = regexp.MustCompile(`^\.(.+)\.tmp-([0-9]{1,10}(?:\.[0-9]+)?)-[0-9]+$`)

// tempPattern is the os.CreateTemp pattern of a temp for dest.
func tempPattern(dest string) string {
	return "." + filepath.Base(dest) + ".tmp-" + owner.ID() + "-*"
}

// createTemp creates a temp file beside dest.
func createTemp(dest string) (*os.File, error) {
	return os.CreateTemp(filepath.Dir(dest), tempPattern(dest))
}

// CleanStaleTemps removes what writers killed while writing dest left:
// the temp files and dirs named .NAME.tmp-OWNER-RANDOM beside dest, NAME
// being dest's base name, and, if dest is an OCI layout, the temps inside
// it and in its blobs/sha256, whose owner is gone (owner.Gone). A temp
// whose owner is alive — being written, or its pid reused — or of a
// living pid namespace is left alone. Every writer of this package calls
// it first; `strata prune` may call it for a destination too. It tries
// every temp and returns the errors met.
func CleanStaleTemps(dest string) error {
	dest = filepath.Clean(dest)
	errs := []error{cleanTemps(filepath.Dir(dest), filepath.Base(dest))}
	if fi, err := os.Lstat(filepath.Join(dest, "oci-layout")); err == nil && fi.Mode().IsRegular() {
		errs = append(errs, cleanTemps(dest, ""), cleanTemps(filepath.Join(dest, "blobs", "sha256"), ""))
	}
	return errors.Join(errs...)
}

// cleanTemps removes the stale temps in dir of the destination name, or
// of any name if name is "".
func cleanTemps(dir, name string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		m := tempRe.FindStringSubmatch(e.Name())
		if m == nil || name != "" && m[1] != name {
			continue
		}
		if !owner.Gone(m[2]) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, fmt.Errorf("removing a stale temp: %w", err))
		}
	}
	return errors.Join(errs...)
}
