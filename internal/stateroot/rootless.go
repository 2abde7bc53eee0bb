package stateroot

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/stratabuild/strata/internal/userns"
)

// Rootful and rootless state directories are not interchangeable: a
// rootless build marks opaque dirs with user.overlay.opaque and mounts
// with userxattr, a build as root uses trusted.overlay.opaque, and each
// would misread the other's snapshots. The kind file records which made a
// state directory.
const (
	kindFile     = "kind"
	kindRootful  = "rootful"
	kindRootless = "rootless"
)

// Rootless reports whether builds of this process are rootless: it runs
// in a user namespace (see userns.Inside), as strata run by a user other
// than root does.
func Rootless() bool { return userns.Inside() }

// DefaultDir is the state directory used without --root: $STRATA_ROOT;
// else /var/lib/strata as root; else, rootless, $XDG_DATA_HOME/strata
// (~/.local/share/strata without it, a dir of the temp dir without a
// home).
func DefaultDir() string {
	if d := os.Getenv("STRATA_ROOT"); d != "" {
		return d
	}
	if os.Geteuid() == 0 && !Rootless() {
		return "/var/lib/strata"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "strata")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" || !filepath.IsAbs(home) {
		return filepath.Join(os.TempDir(), fmt.Sprintf("strata-%d", os.Getuid()))
	}
	return filepath.Join(home, ".local", "share", "strata")
}

// RuntimeOf is the Runtime dir of the state directory dir, which it does
// not open or create: for what runs before a build opens its root.
func RuntimeOf(dir string) string { return (&Root{dir: dir}).Runtime() }

// checkKind records in a new state directory whether rootless builds use
// it, and refuses one the other kind of build made.
func (r *Root) checkKind() error {
	want := kindRootful
	if Rootless() {
		want = kindRootless
	}
	p := filepath.Join(r.dir, kindFile)
	b, err := os.ReadFile(p)
	if err == nil && len(bytes.TrimSpace(b)) == 0 {
		// Left empty by an older strata, which wrote it in place and
		// was stopped before its write: made again.
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("preparing state directory %s: %w", r.dir, err)
		}
		err = fs.ErrNotExist
	}
	if errors.Is(err, fs.ErrNotExist) {
		// A state directory older than the kind file was made as root.
		if err := r.writeKind(p, want); err != nil {
			return fmt.Errorf("preparing state directory %s: %w", r.dir, err)
		}
		b, err = os.ReadFile(p) // this build's kind, or that of one started at once
	}
	if err != nil {
		return fmt.Errorf("reading state directory %s: %w", r.dir, err)
	}
	if got := strings.TrimSpace(string(b)); got != want {
		return fmt.Errorf("state directory %s holds the layers of %s builds, which a %s build cannot use "+
			"(their overlay markers differ): give this build another --root", r.dir, got, want)
	}
	return nil
}

// writeKind makes the kind file p say kind, unless another build made it
// first: written whole to a temp and linked into place, so that builds
// starting at once on a new state directory never read it half-written,
// and the first to link it decides.
func (r *Root) writeKind(p, kind string) error {
	tmp, err := os.CreateTemp(r.dir, ".kind-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(kind + "\n")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	switch err := os.Link(tmp.Name(), p); {
	case err == nil, errors.Is(err, fs.ErrExist):
		return nil
	default: // a filesystem without hardlinks: the last to rename decides
		return os.Rename(tmp.Name(), p)
	}
}

// UseUserRuntimeDir points SecretDir, for a rootless build, at a
// directory only the user can use: $XDG_RUNTIME_DIR/strata (the tmpfs of
// the user's session), else /dev/shm/strata-UID, uid being the user's id
// on the host. It creates it (0700) when missing and refuses one that is
// not a directory of this user's that no one else can enter.
func UseUserRuntimeDir(uid uint32) error {
	dir := filepath.Join("/dev/shm", "strata-"+strconv.FormatUint(uint64(uid), 10))
	if rt := os.Getenv("XDG_RUNTIME_DIR"); rt != "" && filepath.IsAbs(rt) {
		dir = filepath.Join(rt, "strata")
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("preparing the runtime dir for secrets: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("preparing the runtime dir for secrets: %w", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("runtime dir for secrets %s is not a directory only you can use (%v, owner %d): remove it", dir, fi.Mode(), st.Uid)
	}
	SecretDir = dir
	return nil
}
