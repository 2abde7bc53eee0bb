package userns

import (
	"os"
	"path/filepath"
	"testing"
)

// useSubIDFiles points subUIDFile and subGIDFile at files holding subuid
// and subgid for the test ("" for a missing file).
func useSubIDFiles(t *testing.T, subuid, subgid string) {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []struct {
		v       *string
		name    string
		content string
	}{{&subUIDFile, "subuid", subuid}, {&subGIDFile, "subgid", subgid}} {
		p := filepath.Join(dir, f.name)
		if f.content != "" {
			if err := os.WriteFile(p, []byte(f.content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		old := *f.v
		*f.v = p
		t.Cleanup(func() { *f.v = old })
	}
}

// TestSubIDFix: the range suggested starts after every range of any user
// in /etc/subuid and /etc/subgid, and holds the ids asked for, 65536 at
// least.
func TestSubIDFix(t *testing.T) {
	for _, c := range []struct {
		name           string
		subuid, subgid string
		n              uint64
		want           string
	}{
		{"no files", "", "", 10,
			"as root, run: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 alice"},
		{"the user's own range taken", "alice:100000:200000\n", "alice:100000:200000\n", 100000,
			"as root, run: usermod --add-subuids 300000-399999 --add-subgids 300000-399999 alice"},
		{"another user's range taken", "# comment\nbob:100000:65536\n", "bob:100000:65536\n", 1000,
			"as root, run: usermod --add-subuids 165536-231071 --add-subgids 165536-231071 alice"},
		{"the highest of both files, in any order", "bob:500000:65536\ncarol:100000:65536\n", "bob:100000:65536\ndave:900000:10\nbad line\nx:y:z\n", 0,
			"as root, run: usermod --add-subuids 900010-965545 --add-subgids 900010-965545 alice"},
		{"ranges below useradd's first", "bob:1000:5000\n", "", 70000,
			"as root, run: usermod --add-subuids 100000-169999 --add-subgids 100000-169999 alice"},
		{"no room left", "bob:100000:4294900000\n", "", 0,
			"as root, add a range of 65536 ids no other user has to /etc/subuid and /etc/subgid for alice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			useSubIDFiles(t, c.subuid, c.subgid)
			if got := SubIDFix("alice", c.n); got != c.want {
				t.Errorf("SubIDFix(alice, %d) = %q, want %q", c.n, got, c.want)
			}
		})
	}
}
