package layers

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/internal/testutil"
	"github.com/stratabuild/strata/internal/userns"
)

// Rootless tests run their body in a user namespace (testutil.InUserNS),
// as a rootless build does: there the package uses userxattr mounts,
// user.overlay.opaque markers and the namespace's id maps.

// sharedEnv passes a dir the test's two halves (as root, in the
// namespace) both write to.
const sharedEnv = "STRATA_TEST_LAYERS_SHARED"

// capNetBindService is a VFS_CAP_REVISION_2 security.capability granting
// cap_net_bind_service+ep.
const capNetBindService = "\x01\x00\x00\x02\x00\x04\x00\x00" + "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"

// fidelityBase is a layer with what fidelityStep changes: owners in and
// beyond the first 65536 ids, a file capability and a user.* xattr.
func fidelityBase(t testing.TB) []byte {
	return tarOf(t,
		dirE("d/"),
		fileE("d/gone", "gone"),
		dirE("d/dir/"), fileE("d/dir/a", "a"), dirE("d/dir/sub/"), fileE("d/dir/sub/c", "c"),
		tarEntry{Name: "d/u1000", Type: tar.TypeReg, Mode: 0o644, UID: 1000, GID: 1000, Content: "u1000"},
		tarEntry{Name: "d/u100000", Type: tar.TypeReg, Mode: 0o640, UID: 100000, GID: 100000, Content: "u100000"},
		tarEntry{Name: "d/setuid", Type: tar.TypeReg, Mode: 0o755, Content: "suid"},
		fileE("d/chownme", "chown"),
		tarEntry{Name: "d/capfile", Type: tar.TypeReg, Mode: 0o755, Content: "cap",
			Xattrs: map[string]string{"security.capability": capNetBindService, "user.note": "hello"}},
		fileE("d/target", "target"),
	)
}

// fidelityStep unpacks fidelityBase into a store, runs what a step would
// on an overlay over it, and returns the layer Diff makes of the upper dir.
func fidelityStep(t *testing.T) []byte {
	t.Helper()
	s := openStore(t)
	_, snap := unpack(t, s, fidelityBase(t))
	upper, _ := overlayRun(t, []string{snap}, func(m string) {
		must(t, os.Remove(m+"/d/gone"))
		must(t, os.RemoveAll(m+"/d/dir"))
		mkdir(t, m+"/d/dir", 0o755)
		write(t, m+"/d/dir/new", "new", 0o644)
		must(t, os.Lchown(m+"/d/chownme", 1000, 1000))
		must(t, unix.Chmod(m+"/d/setuid", 0o4755))
		must(t, os.Chmod(m+"/d/capfile", 0o700))
		must(t, os.Chmod(m+"/d/u100000", 0o600))
		must(t, os.Link(m+"/d/target", m+"/d/link"))
		write(t, m+"/d/made/by100000", "made", 0o644)
		must(t, os.Lchown(m+"/d/made/by100000", 100000, 100000))
	})
	epoch := time.Unix(1.5e9, 0)
	b, _ := mustDiff(t, DiffOptions{Upper: upper, Lowers: []string{snap}, Epoch: &epoch})
	return b
}

// TestRootlessLayerSameAsRootful makes the same step's layer as root and
// in a user namespace: the tars are the same bytes, ids as the image sees
// them, with the whiteout, the opaque marker, the capability, the user.*
// xattr, the setuid bit and the hardlink.
func TestRootlessLayerSameAsRootful(t *testing.T) {
	var rootful []byte
	shared := os.Getenv(sharedEnv)
	if shared == "" {
		requireOverlay(t)
		rootful = fidelityStep(t)
		shared = testutil.SharedDir(t)
		t.Setenv(sharedEnv, shared)
	}
	if testutil.InUserNS(t, testutil.SubIDMaps) {
		must(t, os.WriteFile(filepath.Join(shared, "rootless.tar"), fidelityStep(t), 0o644))
		return
	}
	rootless, err := os.ReadFile(filepath.Join(shared, "rootless.tar"))
	must(t, err)
	if !bytes.Equal(rootful, rootless) {
		t.Errorf("the rootless layer differs from the rootful one (-rootful +rootless):\n%s",
			cmp.Diff(readTar(t, rootful), readTar(t, rootless)))
	}
	byName := map[string]tarEntry{}
	for _, e := range readTar(t, rootless) {
		byName[e.Name] = e
		for k := range e.Xattrs {
			if strings.HasPrefix(k, "user.overlay.") || strings.HasPrefix(k, "trusted.") {
				t.Errorf("%s carries %s", e.Name, k)
			}
		}
	}
	for name, check := range map[string]func(tarEntry) bool{
		"d/.wh.gone":         func(e tarEntry) bool { return e.Type == tar.TypeReg },
		"d/dir/.wh..wh..opq": func(e tarEntry) bool { return e.Type == tar.TypeReg },
		"d/chownme":          func(e tarEntry) bool { return e.UID == 1000 && e.GID == 1000 },
		"d/setuid":           func(e tarEntry) bool { return e.Mode == 0o4755 },
		"d/capfile": func(e tarEntry) bool {
			return e.Xattrs["security.capability"] == capNetBindService && e.Xattrs["user.note"] == "hello"
		},
		"d/u100000":       func(e tarEntry) bool { return e.UID == 100000 && e.Mode == 0o600 },
		"d/made/by100000": func(e tarEntry) bool { return e.UID == 100000 && e.GID == 100000 },
		"d/link":          func(e tarEntry) bool { return e.Type == tar.TypeReg && e.Content == "target" },
		"d/target":        func(e tarEntry) bool { return e.Type == tar.TypeLink && e.Link == "d/link" },
		"d/dir/new":       func(e tarEntry) bool { return e.Content == "new" },
	} {
		if e, ok := byName[name]; !ok || !check(e) {
			t.Errorf("entry %s = %+v (present %v), not as the step made it", name, e, ok)
		}
	}
}

// TestRootlessSnapshot checks what Unpack makes in a user namespace:
// owners as the image has them, whiteouts as 0/0 char devices, opaque dirs
// marked with user.overlay.opaque, the capability readable as the image's.
func TestRootlessSnapshot(t *testing.T) {
	if !testutil.InUserNS(t, testutil.SubIDMaps) {
		return
	}
	s := openStore(t)
	_, snap := unpack(t, s, tarOf(t,
		dirE("d/"), fileE("d/.wh.gone", ""),
		dirE("d/opq/"), fileE("d/opq/.wh..wh..opq", ""),
		tarEntry{Name: "d/u100000", Type: tar.TypeReg, Mode: 0o640, UID: 100000, GID: 1000, Content: "x",
			Xattrs: map[string]string{"security.capability": capNetBindService}},
	))
	var st unix.Stat_t
	must(t, unix.Lstat(snap+"/d/gone", &st))
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("d/gone: mode %o rdev %d, want a 0/0 char device", st.Mode, st.Rdev)
	}
	if v, err := unix.Lgetxattr(snap+"/d/opq", "user.overlay.opaque", make([]byte, 8)); err != nil || v != 1 {
		t.Errorf("d/opq: user.overlay.opaque: %d bytes, %v", v, err)
	}
	must(t, unix.Lstat(snap+"/d/u100000", &st))
	if st.Uid != 100000 || st.Gid != 1000 {
		t.Errorf("d/u100000 owned by %d:%d, want 100000:1000", st.Uid, st.Gid)
	}
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(snap+"/d/u100000", "security.capability", buf)
	if err != nil || string(buf[:n]) != capNetBindService {
		t.Errorf("d/u100000 security.capability = %q, %v; want the image's", buf[:n], err)
	}
	if err := Probe(t.Context(), t.TempDir()); err != nil {
		t.Errorf("Probe: %v", err)
	}
}

// TestRootlessUnpackRefuses checks the layers a rootless build cannot
// unpack faithfully: each is refused, naming the entry, and leaves
// nothing in the store.
func TestRootlessUnpackRefuses(t *testing.T) {
	cases := []struct {
		name    string
		maps    userns.Maps
		entries []tarEntry
		want    string
	}{
		{"an owner beyond the own ids", testutil.OwnIDMaps,
			[]tarEntry{dirE("etc/"), {Name: "etc/shadow", Type: tar.TypeReg, Mode: 0o640, GID: 42, Content: "s"}},
			"/etc/shadow is owned by 0:42, which this rootless build cannot represent: it maps only your own ids"},
		{"an owner beyond the subordinate ids", testutil.SubIDMaps,
			[]tarEntry{{Name: "big", Type: tar.TypeReg, Mode: 0o644, UID: 300000, GID: 300000, Content: "b"}},
			"/big is owned by 300000:300000, which this rootless build cannot represent: it maps uids 0,1-200000"},
		{"a trusted.* xattr", testutil.SubIDMaps,
			[]tarEntry{{Name: "f", Type: tar.TypeReg, Mode: 0o644, Content: "f", Xattrs: map[string]string{"trusted.md5": "x"}}},
			`entry "f": xattr trusted.md5 cannot be kept by a rootless build`},
		{"a device node outside /dev (a step copying its dir up would commit it without)", testutil.SubIDMaps,
			[]tarEntry{dirE("dev/"), {Name: "dev/null", Type: tar.TypeChar, Mode: 0o666, Dev: "1:3"},
				dirE("opt/"), {Name: "opt/null", Type: tar.TypeChar, Mode: 0o666, Dev: "1:3"}},
			`entry "opt/null": a device node, which a user namespace cannot make, outside /dev`},
		{"an overlay-private user xattr", testutil.SubIDMaps,
			[]tarEntry{{Name: "d/", Type: tar.TypeDir, Mode: 0o755, Xattrs: map[string]string{"user.overlay.opaque": "y"}}},
			`entry "d": refusing overlay-private xattr user.overlay.opaque`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !testutil.InUserNS(t, c.maps) {
				return
			}
			s := openStore(t)
			layer := tarOf(t, c.entries...)
			_, err := s.Unpack(t.Context(), digest.FromBytes(layer), bytes.NewReader(layer))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Unpack = %v, want an error saying %q", err, c.want)
			}
			var unmapped *userns.UnmappedError
			if strings.Contains(c.want, "owned by") && !errors.As(err, &unmapped) {
				t.Errorf("Unpack = %T, want a *userns.UnmappedError", err)
			}
			if snaps, _ := s.Snapshots(); len(snaps) != 0 {
				t.Errorf("the refused layer left snapshots %v", snaps)
			}
			assertTmpEmpty(t, s)
		})
	}
}

// TestRootlessDiffRefusesUnmappedOwner: a file whose owner the namespace
// cannot map reads as the overflow id there; Diff refuses it rather than
// commit that id.
func TestRootlessDiffRefusesUnmappedOwner(t *testing.T) {
	shared := os.Getenv(sharedEnv)
	if shared == "" {
		testutil.RequireRoot(t)
		shared = testutil.SharedDir(t)
		write(t, shared+"/upper/etc/owned", "x", 0o644)
		for _, p := range []string{"/upper", "/upper/etc", "/lower"} {
			must(t, os.MkdirAll(shared+p, 0o755))
			must(t, os.Lchown(shared+p, testutil.UserNSHostID, testutil.UserNSHostID))
		}
		must(t, os.Lchown(shared+"/upper/etc/owned", 4242, 4242)) // a host id outside the maps
		t.Setenv(sharedEnv, shared)
	}
	if !testutil.InUserNS(t, testutil.OwnIDMaps) {
		return
	}
	_, err := Diff(t.Context(), new(bytes.Buffer), DiffOptions{Upper: shared + "/upper", Lowers: []string{shared + "/lower"}, KeepUpper: true})
	var unmapped *userns.UnmappedError
	if !errors.As(err, &unmapped) || unmapped.Path != "/etc/owned" {
		t.Fatalf("Diff = %v, want a *userns.UnmappedError naming /etc/owned", err)
	}
}
