package owner

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestGone: an owner id is gone when its process has ended in this pid
// namespace; this process's, a live one's, another namespace's and what
// is not an id are not.
func TestGone(t *testing.T) {
	me := ID()
	if !strings.HasPrefix(me, strconv.Itoa(os.Getpid())) {
		t.Fatalf("ID() = %q, not this pid first", me)
	}
	_, ns, hasNS := strings.Cut(me, ".")
	if !hasNS {
		t.Fatalf("ID() = %q names no pid namespace", me)
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := strconv.Itoa(cmd.Process.Pid)
	for id, want := range map[string]bool{
		me:                                    false,
		dead + "." + ns:                       true,
		dead:                                  true, // as strata named them before the namespace
		dead + ".1":                           false,
		strconv.Itoa(os.Getppid()) + "." + ns: false,
		"notapid":                             false,
		"":                                    false,
	} {
		if got := Gone(id); got != want {
			t.Errorf("Gone(%q) = %t, want %t", id, got, want)
		}
	}
}
