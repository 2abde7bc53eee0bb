package userns

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseMap(t *testing.T) {
	m, err := parseMap(strings.NewReader("         0       1001          1\n         1     100000      65536\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := IDMap{{0, 1001, 1}, {1, 100000, 65536}}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("parseMap (-want +got):\n%s", diff)
	}
	for _, c := range []struct {
		id      uint32
		in      bool
		outside uint32
	}{{0, true, 1001}, {1, true, 100000}, {65536, true, 165535}, {65537, false, 0}} {
		out, ok := m.Outside(c.id)
		if m.Contains(c.id) != c.in || ok != c.in || out != c.outside {
			t.Errorf("id %d: Contains %v, Outside %d %v; want %v, %d", c.id, m.Contains(c.id), out, ok, c.in, c.outside)
		}
		if in, ok := m.Inside(c.outside); c.in && (!ok || in != c.id) {
			t.Errorf("Inside(%d) = %d, %v; want %d", c.outside, in, ok, c.id)
		}
	}
	if _, ok := m.Inside(165536); ok {
		t.Error("Inside(165536) says it is mapped")
	}
	if got := m.Size(); got != 65537 {
		t.Errorf("Size = %d, want 65537", got)
	}
	if full, _ := parseMap(strings.NewReader("0 0 4294967295\n")); !full.isIdentity() || m.isIdentity() {
		t.Errorf("isIdentity: the initial namespace's map is %v, a rootless one %v", full.isIdentity(), m.isIdentity())
	}
	if _, err := parseMap(strings.NewReader("0 1001\n")); err == nil {
		t.Error("parseMap accepted a line of two fields")
	}
}

func TestSubIDsStacked(t *testing.T) {
	file := filepath.Join(t.TempDir(), "subuid")
	content := "# comment\nalice:100000:65536\nbob:165536:65536\n1001:300000:1000\nalice:500000:10\nbad line\nalice:x:1\n"
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := subIDs(file, "alice", 1001)
	if err != nil {
		t.Fatal(err)
	}
	want := []Range{{Outside: 100000, Count: 65536}, {Outside: 300000, Count: 1000}, {Outside: 500000, Count: 10}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("subIDs (-want +got):\n%s", diff)
	}
	m := stack(1001, got)
	wantMap := IDMap{{0, 1001, 1}, {1, 100000, 65536}, {65537, 300000, 1000}, {66537, 500000, 10}}
	if diff := cmp.Diff(wantMap, m); diff != "" {
		t.Errorf("stack (-want +got):\n%s", diff)
	}
	if got := strings.Join(m.args(), " "); got != "0 1001 1 1 100000 65536 65537 300000 1000 66537 500000 10" {
		t.Errorf("newuidmap arguments %q", got)
	}
	if none, err := subIDs(filepath.Join(t.TempDir(), "missing"), "alice", 1001); err != nil || none != nil {
		t.Errorf("subIDs of a missing file = %v, %v; want none", none, err)
	}
}

func TestUnmappedErrorMessages(t *testing.T) {
	useSubIDFiles(t, "other:100000:65536\n", "other:100000:65536\n")
	own := Maps{UIDs: IDMap{{0, 4294967, 1}}, GIDs: IDMap{{0, 4294967, 1}}}
	err := CheckOwner(own, "/etc/shadow", 0, 42)
	want := "/etc/shadow is owned by 0:42, which this rootless build cannot represent: it maps only your own ids " +
		"(4294967 has no subordinate ids in /etc/subuid and /etc/subgid) (as root, run: usermod --add-subuids " +
		"165536-231071 --add-subgids 165536-231071 4294967)"
	if err == nil || err.Error() != want {
		t.Errorf("CheckOwner = %v\nwant %s", err, want)
	}
	sub := Maps{UIDs: IDMap{{0, 4294967, 1}, {1, 100000, 65536}}, GIDs: IDMap{{0, 4294967, 1}, {1, 100000, 65536}}}
	if err := CheckOwner(sub, "/x", 1000, 65536); err != nil {
		t.Errorf("CheckOwner of mapped ids = %v", err)
	}
	err = CheckOwner(sub, "/big", 100000, 0)
	if err == nil || !strings.Contains(err.Error(), "it maps uids 0,1-65536 and gids 0,1-65536") ||
		!strings.Contains(err.Error(), "(give 4294967 34464 more subordinate ids in /etc/subuid and /etc/subgid (id 100000 needs 100000 in all); "+
			"as root, run: usermod --add-subuids 165536-231071 --add-subgids 165536-231071 4294967)") {
		t.Errorf("CheckOwner beyond the ranges = %v", err)
	}
	// More than 65536 ids short: a range as large as needed.
	err = CheckOwner(sub, "/huge", 0, 300000)
	if err == nil || !strings.Contains(err.Error(), "234464 more subordinate ids") ||
		!strings.Contains(err.Error(), "usermod --add-subuids 165536-399999 --add-subgids 165536-399999 4294967)") {
		t.Errorf("CheckOwner far beyond the ranges = %v", err)
	}
	err = &UnmappedError{User: "app", UID: 1000, GID: 1000, Maps: own}
	if !strings.HasPrefix(err.Error(), `the step's user "app" is 1000:1000, which this rootless build cannot represent`) {
		t.Errorf("UnmappedError of a user = %v", err)
	}
}
