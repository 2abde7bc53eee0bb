package testutil

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The unprivileged users rootless tests run strata as. .ci/rootless-user
// makes them the same way RootlessUser and UserWithoutSubIDs do.
const (
	// RootlessUserName has MinSubIDs subordinate uids and gids.
	RootlessUserName = "strata-ci"
	// NoSubIDsUserName has none.
	NoSubIDsUserName = "strata-nosub"
	// MinSubIDs is how many subordinate ids RootlessUserName gets, so
	// that an image's uid 100000 can be represented.
	MinSubIDs = 200_000
)

// User is an unprivileged user of this machine.
type User struct {
	Name     string
	UID, GID int
	Home     string
}

var users struct {
	mu   sync.Mutex
	made map[string]error
}

// RootlessUser returns the unprivileged user RootlessUserName, with at
// least MinSubIDs subordinate uids and gids in /etc/subuid and
// /etc/subgid, creating it (useradd, usermod) when missing. Skips, or
// fails under STRATA_REQUIRE_PRIVILEGED=1, unless the test runs as root
// on a machine with newuidmap (package uidmap).
func RootlessUser(t testing.TB) User {
	t.Helper()
	return ensureUser(t, RootlessUserName, MinSubIDs)
}

// UserWithoutSubIDs returns the unprivileged user NoSubIDsUserName, who
// has no subordinate ids, creating it when missing.
func UserWithoutSubIDs(t testing.TB) User {
	t.Helper()
	return ensureUser(t, NoSubIDsUserName, 0)
}

func ensureUser(t testing.TB, name string, subIDs int) User {
	t.Helper()
	RequireRoot(t)
	Require(t, "newuidmap", func() error { _, err := exec.LookPath("newuidmap"); return err },
		"apt-get install -y uidmap")
	users.mu.Lock()
	defer users.mu.Unlock()
	if users.made == nil {
		users.made = map[string]error{}
	}
	err, done := users.made[name]
	if !done {
		err = makeUser(name, subIDs)
		users.made[name] = err
	}
	if err != nil {
		t.Fatalf("making user %s: %v", name, err)
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return User{Name: name, UID: uid, GID: gid, Home: u.HomeDir}
}

// makeUser creates name if missing and gives it subIDs subordinate ids
// after every range already given, or takes all of its own away when
// subIDs is 0.
func makeUser(name string, subIDs int) error {
	if _, err := user.Lookup(name); err != nil {
		out, err := exec.Command("useradd", "--create-home", "--shell", "/bin/sh",
			"-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", name).CombinedOutput()
		if err != nil && !strings.Contains(string(out), "already exists") {
			return fmt.Errorf("useradd: %w: %s", err, out)
		}
	}
	for _, file := range []string{"/etc/subuid", "/etc/subgid"} { // usermod needs them
		f, err := os.OpenFile(file, os.O_CREATE|os.O_RDONLY, 0o644)
		if err != nil {
			return err
		}
		f.Close()
	}
	counts, next := map[string]int{}, 100_000
	files := []string{"/etc/subuid", "/etc/subgid"}
	for _, file := range files {
		ranges, err := readSubIDs(file)
		if err != nil {
			return err
		}
		for _, r := range ranges {
			next = max(next, r.start+r.count)
			if r.owner == name {
				counts[file] += r.count
			}
		}
	}
	have := min(counts[files[0]], counts[files[1]])
	switch {
	case subIDs == 0 && counts[files[0]]+counts[files[1]] > 0:
		return fmt.Errorf("%s has subordinate ids in /etc/subuid or /etc/subgid; remove them", name)
	case have >= subIDs:
		return nil
	}
	span := fmt.Sprintf("%d-%d", next, next+subIDs-1)
	if out, err := exec.Command("usermod", "--add-subuids", span, "--add-subgids", span, name).CombinedOutput(); err != nil {
		return fmt.Errorf("usermod: %w: %s", err, out)
	}
	return nil
}

type subIDRange struct {
	owner        string
	start, count int
}

func readSubIDs(file string) ([]subIDRange, error) {
	f, err := os.Open(file)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []subIDRange
	s := bufio.NewScanner(f)
	for s.Scan() {
		p := strings.Split(strings.TrimSpace(s.Text()), ":")
		if len(p) != 3 {
			continue
		}
		start, err1 := strconv.Atoi(p[1])
		count, err2 := strconv.Atoi(p[2])
		if err1 == nil && err2 == nil {
			out = append(out, subIDRange{p[0], start, count})
		}
	}
	return out, s.Err()
}

// Command returns a command that runs name as u, with setpriv (no PAM, no
// login session): u's ids and groups, and an environment of HOME, USER,
// LOGNAME, a standard PATH and env.
func (u User) Command(env []string, name string, args ...string) *exec.Cmd {
	cmd := exec.Command("setpriv", append([]string{"--reuid=" + strconv.Itoa(u.UID), "--regid=" + strconv.Itoa(u.GID),
		"--init-groups", "--", name}, args...)...)
	cmd.Env = append([]string{"HOME=" + u.Home, "USER=" + u.Name, "LOGNAME=" + u.Name,
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	return cmd
}
