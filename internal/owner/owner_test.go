//go:build linux

package owner_test

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratabuild/strata/internal/owner"
	"github.com/stratabuild/strata/internal/testutil"
)

// TestGone: an owner id is gone when its process has ended in this pid
// namespace, or, seen from the initial namespace, when its namespace has
// no process left; this process's, a live one's, a living other
// namespace's and what is not an id are not.
func TestGone(t *testing.T) {
	me := owner.ID()
	if !strings.HasPrefix(me, strconv.Itoa(os.Getpid())+".") {
		t.Fatalf("ID() = %q, not this pid and a pid namespace", me)
	}
	_, ns, _ := strings.Cut(me, ".")
	if ns != "4026531836" {
		t.Skipf("not in the initial pid namespace (%s): another namespace's ids are never judged from here", ns)
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := strconv.Itoa(cmd.Process.Pid)
	living := testutil.ForeignPIDNS(t)
	for id, want := range map[string]bool{
		me:                                    false,
		dead + "." + ns:                       true,
		dead:                                  true, // as strata named them before the namespace
		dead + "." + living:                   false,
		dead + ".1":                           true, // a namespace no process is in
		strconv.Itoa(os.Getppid()) + "." + ns: false,
		"notapid":                             false,
		"":                                    false,
	} {
		if got := owner.Gone(id); got != want {
			t.Errorf("Gone(%q) = %t, want %t", id, got, want)
		}
	}
}

// TestGoneZombie: a process that has ended but not been reaped (its parent
// has not waited for it) is gone, though kill(pid, 0) still finds it.
func TestGoneZombie(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	pid := strconv.Itoa(cmd.Process.Pid)
	deadline := time.Now().Add(5 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(stat), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the child is not a zombie yet: %s", stat)
		}
		time.Sleep(10 * time.Millisecond)
	}
	id := pid
	if _, ns, ok := strings.Cut(owner.ID(), "."); ok {
		id += "." + ns
	}
	if !owner.Gone(id) {
		t.Errorf("Gone(%q) = false for a zombie", id)
	}
}
