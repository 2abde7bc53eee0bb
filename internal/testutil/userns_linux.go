package testutil

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/internal/userns"
)

// userNSEnv names, in the copy of the test binary InUserNS starts, the
// test it runs there.
const userNSEnv = "_STRATA_TEST_IN_USERNS"

// Host ids of the namespaces InUserNS makes: far above any real user's or
// subordinate range's.
const (
	// UserNSHostID is the host uid and gid of uid and gid 0 inside: the
	// "user" a test plays.
	UserNSHostID = 1_600_000_000
	nsHostSub    = 1_600_100_000 // ids 1… inside, the "subordinate range"
)

// SubIDMaps map, as a rootless build by a user with subordinate ids does,
// the user's own ids as 0 and 200000 subordinate ids from 1 on.
var SubIDMaps = userns.Maps{
	UIDs: userns.IDMap{{Inside: 0, Outside: UserNSHostID, Count: 1}, {Inside: 1, Outside: nsHostSub, Count: 200_000}},
	GIDs: userns.IDMap{{Inside: 0, Outside: UserNSHostID, Count: 1}, {Inside: 1, Outside: nsHostSub, Count: 200_000}},
}

// OwnIDMaps map only the user's own ids, as 0: a rootless build by a user
// without subordinate ids.
var OwnIDMaps = userns.Maps{
	UIDs: userns.IDMap{{Inside: 0, Outside: UserNSHostID, Count: 1}},
	GIDs: userns.IDMap{{Inside: 0, Outside: UserNSHostID, Count: 1}},
}

// IdentityMaps map every id to itself: a user namespace strata takes
// for the initial one (userns.Inside is false there), where root still
// lacks the initial namespace's powers (no device nodes, no trusted.*
// xattrs).
var IdentityMaps = userns.Maps{
	UIDs: userns.IDMap{{Inside: 0, Outside: 0, Count: 1<<32 - 1}},
	GIDs: userns.IDMap{{Inside: 0, Outside: 0, Count: 1<<32 - 1}},
}

// InUserNS runs the calling test again, in a copy of the test binary, in
// a new user and mount namespace with maps, where it is uid 0 with that
// namespace's capabilities only: as a rootless build runs. It returns true
// in the copy, where the test goes on, and false in the caller once the
// copy ended, the test then passing, failing or skipping as it did there:
//
//	if !testutil.InUserNS(t, testutil.SubIDMaps) {
//		return
//	}
//
// The caller must be root (it writes the maps without newuidmap). Files
// the copy makes are owned by host ids of no real user.
func InUserNS(t *testing.T, maps userns.Maps) bool {
	t.Helper()
	if os.Getenv(userNSEnv) == t.Name() {
		if !userns.Inside() && !slices.Equal(maps.UIDs, IdentityMaps.UIDs) {
			t.Fatalf("%s=%s set outside a user namespace", userNSEnv, t.Name())
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			t.Fatalf("making mounts private: %v", err)
		}
		return true
	}
	RequireRoot(t)
	var parts []string
	for _, p := range strings.Split(t.Name(), "/") {
		parts = append(parts, "^"+regexp.QuoteMeta(p)+"$")
	}
	// /proc/self/exe: the binary's dir may not be searchable by the
	// namespace's ids, the binary itself is.
	cmd := exec.Command("/proc/self/exe", "-test.run="+strings.Join(parts, "/"), "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), userNSEnv+"="+t.Name())
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: idMappings(maps.UIDs),
		GidMappings: idMappings(maps.GIDs),
		// As strata does with own ids only, where the kernel demands it.
		GidMappingsEnableSetgroups: !maps.OwnIDOnly(),
		// Become the namespace's uid 0, the host id it maps (this process
		// is host root, which the maps leave out).
		Credential: &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: maps.OwnIDOnly()},
	}
	out, err := cmd.CombinedOutput()
	switch {
	case err != nil:
		t.Fatalf("in a user namespace (uids %s): %v\n%s", maps.UIDs, err, out)
	case strings.Contains(string(out), "--- SKIP: "+t.Name()):
		t.Skipf("skipped in a user namespace:\n%s", out)
	case !strings.Contains(string(out), "--- PASS: "+t.Name()):
		t.Fatalf("in a user namespace (uids %s): the test did not run:\n%s", maps.UIDs, out)
	default:
		t.Logf("in a user namespace (uids %s):\n%s", maps.UIDs, out)
	}
	return false
}

func idMappings(m userns.IDMap) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(m))
	for i, r := range m {
		out[i] = syscall.SysProcIDMap{ContainerID: int(r.Inside), HostID: int(r.Outside), Size: int(r.Count)}
	}
	return out
}
