// Package testutil holds helpers shared by strata's tests: privilege probes
// that skip with the reason and the fix, or fail under CI.
package testutil

import (
	"os"
	"testing"
)

// RequireEnv is the variable that turns a privileged test's skip into a
// failure. .ci/run sets it, so a skip cannot hide a regression.
const RequireEnv = "STRATA_REQUIRE_PRIVILEGED"

// Require runs probe, which must really try the operation the test needs
// (mount an overlay, exec runc, mknod). If probe fails the test is skipped
// with what was tried, why it failed and fix — or, when STRATA_REQUIRE_PRIVILEGED=1,
// it fails instead.
func Require(t testing.TB, what string, probe func() error, fix string) {
	t.Helper()
	err := probe()
	if err == nil {
		return
	}
	msg := what + " unavailable: " + err.Error()
	if fix != "" {
		msg += " (" + fix + ")"
	}
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s; %s=1 forbids skipping", msg, RequireEnv)
	}
	t.Skip(msg)
}

// RequireRoot skips (or fails under STRATA_REQUIRE_PRIVILEGED=1) unless the
// test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	Require(t, "root", func() error {
		if os.Geteuid() != 0 {
			return errNotRoot
		}
		return nil
	}, "run the tests as root: sudo go test ./...")
}

type constError string

func (e constError) Error() string { return string(e) }

const errNotRoot = constError("effective uid is not 0")

// SharedDir returns a fresh temp dir, removed after the test, that every
// user can enter and write to: for the files a test as root shares with a
// rootless build or a test in a user namespace (t.TempDir's parent is
// root's alone).
func SharedDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "strata-shared-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}
