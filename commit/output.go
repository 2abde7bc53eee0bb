package commit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/stratabuild/strata/internal/inputfile"
	"github.com/stratabuild/strata/internal/owner"
	"github.com/stratabuild/strata/internal/userns"
)

// WriteDockerArchive writes img as a `docker save` tarball named by tags
// (none: an untagged image). It checks file as CheckDockerDest does,
// removes the temp files that killed writers left beside it
// (CleanStaleTemps) and creates its missing parent directories. It is
// written as WriteFile writes: a failure leaves an existing file as it
// was, a symbolic link is followed, a device or FIFO is written in place.
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
	return writeOutput(file, func(f *os.File) error {
		return tarball.MultiRefWrite(refs, f)
	})
}

// CheckDockerDest returns an error if a docker archive cannot be written
// at file (see CheckFileDest). It writes nothing; call it before a build
// to fail early.
func CheckDockerDest(file string) error {
	return CheckFileDest(file, "the archive's file name", "image.tar")
}

// CheckFileDest returns an error if WriteFile cannot write file: file
// ends in "/", is a directory, a block device or a socket, or its parent
// neither exists nor can be created (a ".." after a directory that does
// not exist counts: the system resolves it before the ".."). A character
// device (/dev/stdout on a terminal, /dev/null) or a FIFO is fine: it is
// written in place; so is a symbolic link, whose target is written, even
// one to a file not there yet. The error asks for what (such as "the
// archive's file name"), suggesting example inside a directory given. It
// writes nothing.
func CheckFileDest(file, what, example string) error {
	if file == "" {
		return fmt.Errorf("no file name; give %s", what)
	}
	if strings.HasSuffix(file, "/") {
		return fmt.Errorf("%s ends in /, so names a directory; give %s, such as %s", file, what, filepath.Join(file, example))
	}
	if err := checkDotDots(file); err != nil {
		return err
	}
	fi, err := os.Stat(file)
	switch {
	case err == nil && fi.IsDir():
		return fmt.Errorf("%s is a directory; give %s, such as %s", file, what, filepath.Join(file, example))
	case err == nil && inPlaceKind(fi.Mode()):
		return nil
	case err == nil && !fi.Mode().IsRegular():
		return fmt.Errorf("%s is %s, not a regular file, a character device or a FIFO; give %s", file, inputfile.Kind(fi.Mode()), what)
	case err != nil && !absent(err):
		return err
	}
	d, err := resolveDest(file)
	switch {
	case err != nil:
		return err
	case d.inPlace:
		return nil
	case d.fi != nil:
		return WritableDir(filepath.Dir(d.path))
	}
	return creatable(filepath.Dir(d.path))
}

// checkDotDots returns an error if a ".." of file follows a directory
// that does not exist: the system resolves the path step by step, so
// a/x/../f needs a/x, which filepath.Clean would drop.
func checkDotDots(file string) error {
	parts := strings.Split(file, "/")
	for i := 1; i < len(parts); i++ {
		prefix := strings.Join(parts[:i], "/")
		if parts[i] != ".." || prefix == "" {
			continue
		}
		if fi, err := os.Stat(prefix); err != nil || !fi.IsDir() {
			return fmt.Errorf("%s goes through %s, which is not a directory", file, prefix)
		}
	}
	return nil
}

// inPlaceKind reports whether a file of mode m is written in place, not
// replaced: a character device or a FIFO.
func inPlaceKind(m fs.FileMode) bool {
	return m&fs.ModeNamedPipe != 0 || m&fs.ModeCharDevice != 0
}

// fileDest is where a write to a file name goes.
type fileDest struct {
	// path is the name with its symbolic links resolved: the file
	// replaced.
	path string
	// inPlace says the file is written where it is, not replaced: a
	// character device, a FIFO, or a file reached through a process's
	// file descriptor (/dev/stdout, /proc/self/fd/1), which a rename
	// would not reach. It is written through fd, else opened through
	// the name as given and appended to.
	inPlace bool
	// fd is this process's descriptor the name leads to (/dev/stdout:
	// 1), -1 for none: written through a copy of it, which shares its
	// offset, so that what the process then writes to it follows.
	fd int
	// fi describes what is at path; nil if nothing is.
	fi fs.FileInfo
}

// maxLinks bounds the symbolic links followed to resolve a name, as the
// system's ELOOP does.
const maxLinks = 40

// resolveDest resolves file's symbolic links, the last of which may name
// a file that does not exist yet; the parent of that file must exist.
func resolveDest(file string) (fileDest, error) {
	path := file
	d := fileDest{fd: -1}
	for range maxLinks {
		dir, base := splitPath(path)
		if base == "." || base == ".." {
			return fileDest{}, fmt.Errorf("%s names a directory", file)
		}
		real, err := filepath.EvalSymlinks(dir)
		if absent(err) {
			// Missing parents are made: nothing below them is a link.
			return fileDest{path: path, fd: -1}, nil
		}
		if err != nil {
			return fileDest{}, err
		}
		if procFD(real) {
			d.inPlace = true
			if n, err := strconv.Atoi(base); err == nil && d.fd < 0 && real == fmt.Sprintf("/proc/%d/fd", os.Getpid()) {
				d.fd = n
			}
		}
		path = filepath.Join(real, base)
		fi, err := os.Lstat(path)
		if absent(err) {
			d.path = path
			return d, nil
		}
		if err != nil {
			return fileDest{}, err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			d.path, d.fi = path, fi
			d.inPlace = d.inPlace || inPlaceKind(fi.Mode())
			return d, nil
		}
		target, err := os.Readlink(path)
		if err != nil {
			return fileDest{}, err
		}
		if !filepath.IsAbs(target) {
			target = real + "/" + target // unclean: a ".." is resolved after what precedes it
		}
		path = target
	}
	return fileDest{}, fmt.Errorf("%s: %w", file, syscall.ELOOP)
}

// splitPath splits a path at its last "/", keeping the directory as
// written (filepath.Dir would clean it).
func splitPath(path string) (dir, base string) {
	i := strings.LastIndexByte(path, '/')
	switch {
	case i < 0:
		return ".", path
	case i == 0:
		return "/", path[1:]
	}
	return path[:i], path[i+1:]
}

// procFD reports whether dir holds the file descriptors of a process:
// a link there is a process's open file, which may be a pipe or a file
// with no name left, not a name to rename over.
func procFD(dir string) bool {
	if dir == "/dev/fd" {
		return true
	}
	rest, ok := strings.CutPrefix(dir, "/proc/")
	if !ok {
		return false
	}
	parts := strings.Split(rest, "/")
	return len(parts) >= 2 && parts[len(parts)-1] == "fd"
}

// WriteFile writes data to file the way outputs are written (a digest
// file, a metadata file): its missing parents made, a symbolic link
// followed. A regular file is replaced atomically, through a temp beside
// it that CleanStaleTemps knows, synced: a reader sees the old file or the
// whole new one. It keeps the mode of the file it replaces (and its owner
// when run as root); a new one is 0666 less the umask. A character
// device, a FIFO or a process's file descriptor (/dev/stdout) is written
// in place.
func WriteFile(file string, data []byte) error {
	return WriteFileLike(file, data, nil)
}

// WriteFileLike is WriteFile, but a file it creates anew gets the mode
// (and, as root, the owner) of was, the file RemoveStale removed there
// before the build (nil: none).
func WriteFileLike(file string, data []byte, was fs.FileInfo) error {
	if err := CheckFileDest(file, "a file name", "file"); err != nil {
		return err
	}
	return writeOutputLike(file, was, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// RemoveStale removes the regular file that file names, following its
// links (which stay), so that a build that fails leaves no earlier
// build's output to be taken for its own: as buildx removes its iidfile
// first. A device, a FIFO or a process's file descriptor is left alone,
// and so is a file name that names nothing. It returns what it removed
// (nil: nothing), for WriteFileLike to give the new file its mode.
func RemoveStale(file string) (fs.FileInfo, error) {
	d, err := resolveDest(file)
	if err != nil {
		// A name that cannot be resolved leads to no earlier output.
		return nil, nil
	}
	if d.inPlace || d.fi == nil || !d.fi.Mode().IsRegular() {
		return nil, nil
	}
	if err := os.Remove(d.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return d.fi, nil
}

// writeOutput writes file through write: in place if it is a device, a
// FIFO or a process's descriptor, else by replaceFile on the file its
// links lead to, keeping the mode and owner of the file replaced.
func writeOutput(file string, write func(*os.File) error) error {
	return writeOutputLike(file, nil, write)
}

// writeOutputLike is writeOutput; a file made anew takes was's mode and
// owner (see WriteFileLike).
func writeOutputLike(file string, was fs.FileInfo, write func(*os.File) error) error {
	d, err := resolveDest(file)
	if err != nil {
		return err
	}
	if d.inPlace {
		return writeInPlace(file, d.fd, write)
	}
	_ = CleanStaleTemps(d.path) // best effort: a temp left is no reason to fail
	if d.fi == nil {
		if err := os.MkdirAll(filepath.Dir(d.path), 0o755); err != nil {
			return err
		}
		// The parents made may have been links' targets.
		if d, err = resolveDest(file); err != nil {
			return err
		}
	}
	old := d.fi
	if old == nil {
		old = was
	}
	if err := replaceAs(d.path, old, write); err != nil {
		return err
	}
	return syncDir(filepath.Dir(d.path))
}

// writeInPlace writes through the name as given (the system follows its
// links), appending: a device, a FIFO, /dev/stdout; or through a copy of
// this process's descriptor fd (>= 0) the name leads to, at its offset.
func writeInPlace(file string, fd int, write func(*os.File) error) error {
	var f *os.File
	if fd >= 0 {
		dup, err := syscall.Dup(fd)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		f = os.NewFile(uintptr(dup), file)
	} else {
		var err error
		if f, err = os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0); err != nil {
			return err
		}
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// replaceAs is renameSynced for an output file: the temp is created 0666
// less the umask, or gets the mode (and, as root, the owner) of old, the
// file it replaces.
func replaceAs(file string, old fs.FileInfo, write func(*os.File) error) error {
	create := func(file string) (*os.File, error) { return createTempMode(file, 0o666) }
	return renameTemp(file, create, write, func(f *os.File) error {
		if old == nil || !old.Mode().IsRegular() {
			return nil
		}
		if err := keepOwner(f, old); err != nil {
			return err
		}
		return f.Chmod(old.Mode().Perm())
	})
}

// keepOwner gives f the owner of old when this process may (as root). Not
// in a user namespace (a rootless build): there ids outside its map read
// as the overflow id, and a chown to that gives the user's file to a
// subordinate id they cannot read as.
func keepOwner(f *os.File, old fs.FileInfo) error {
	st, ok := old.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 || userns.Inside() {
		return nil
	}
	return f.Chown(int(st.Uid), int(st.Gid))
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
func renameSynced(file string, write func(*os.File) error) error {
	return renameTemp(file, createTemp, write, func(f *os.File) error { return f.Chmod(0o644) })
}

// renameTemp writes file through write on a temp beside it that create
// makes, gives it its mode with setMode, syncs it and renames it over
// file; on failure the temp is removed.
func renameTemp(file string, create func(string) (*os.File, error), write, setMode func(*os.File) error) (err error) {
	f, err := create(file)
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
	if err := setMode(f); err != nil {
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
			return WritableDir(p)
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

// createTemp creates a temp file beside dest, mode 0600.
func createTemp(dest string) (*os.File, error) {
	return os.CreateTemp(filepath.Dir(dest), tempPattern(dest))
}

// createTempMode creates a temp file beside dest as createTemp does, but
// with perm less the umask, as a file the user creates.
func createTempMode(dest string, perm fs.FileMode) (*os.File, error) {
	prefix := filepath.Join(filepath.Dir(dest), strings.TrimSuffix(tempPattern(dest), "*"))
	for range 100 {
		f, err := os.OpenFile(prefix+strconv.FormatUint(uint64(rand.Uint32()), 10), os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
	return nil, fmt.Errorf("creating a temp file beside %s: too many tries", dest)
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
