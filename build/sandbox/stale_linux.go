package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/internal/owner"
)

// runtimeRecord is the file, in a container's bundle, naming the runtime
// process that runs it (`runc run`): its pid, its start time and the boot,
// by which a later build tells it from a process that reused the pid
// (the bundle is under --root, which outlives a reboot).
const runtimeRecord = "runtime.pid"

// stopTimeout bounds how long stopStale waits for SIGKILLed processes to
// be gone.
const stopTimeout = 10 * time.Second

// recordRuntime writes bundle's runtimeRecord for the runtime process pid,
// whole or not at all (a temp renamed into place).
func recordRuntime(bundle string, pid int) error {
	start, _, err := owner.ProcStat(pid)
	if err != nil {
		return fmt.Errorf("recording the runtime's pid: %w", err)
	}
	tmp, err := os.CreateTemp(bundle, runtimeRecord+".*")
	if err != nil {
		return fmt.Errorf("recording the runtime's pid: %w", err)
	}
	_, err = fmt.Fprintf(tmp, "%d %d %s\n", pid, start, bootID())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(bundle, runtimeRecord))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("recording the runtime's pid: %w", err)
	}
	return nil
}

// stopStale stops what the runtime of a killed build may still be doing
// for container id, before its bundle and its rootfs's mount point are
// removed. The runtime is not killed with the build: a build killed while
// its runtime sets a container up leaves `runc run` and the container's
// init working on. Told nothing, the runtime would carry on after the
// next build removed the bundle and the mount point, make the mount
// point's dir again (its init creates /proc, /dev and /sys under the
// rootfs by path) and leave it for good. So the runtime process the
// bundle names is SIGKILLed, then every process in the container's cgroup
// (the init joins it before it mounts anything), each until gone. A
// rootless build's container has no cgroup: only its runtime process is
// stopped.
func stopStale(stateDir, id string) error {
	err := stopRecorded(filepath.Join(stateDir, id+bundleSuffix))
	return errors.Join(err, emptyCgroups(containerCgroups(id)))
}

// containerCgroups lists the cgroup dirs of container id that exist, one
// per hierarchy.
func containerCgroups(id string) []string {
	var dirs []string
	for _, m := range cgroupMounts() {
		dir := filepath.Join(m, cgroupParent, id)
		if _, err := os.Lstat(dir); err == nil {
			dirs = append(dirs, dir)
		}
	}
	return dirs
}

// removeCgroups removes container id's cgroups, emptied by stopStale,
// that `runc delete` left: those of a container killed before the
// runtime wrote its state.
func removeCgroups(id string) error {
	var errs []error
	for _, dir := range containerCgroups(id) {
		if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("removing cgroup %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

// stopRecorded SIGKILLs the runtime process bundle's runtimeRecord names,
// if it still runs, and waits until it is gone. A record that is missing
// or does not parse names none.
func stopRecorded(bundle string) error {
	b, err := os.ReadFile(filepath.Join(bundle, runtimeRecord))
	if err != nil {
		return nil // no runtime was started, or the bundle is gone
	}
	var pid int
	var start uint64
	var boot string
	n, _ := fmt.Sscanf(string(b), "%d %d %s", &pid, &start, &boot)
	if n < 2 || pid <= 0 || n == 3 && boot != bootID() {
		return nil // none, or of another boot: its runtime is gone (one without a boot is older: taken as this boot's)
	}
	same := func() bool {
		s, zombie, err := owner.ProcStat(pid)
		return err == nil && s == start && !zombie
	}
	if !same() {
		return nil
	}
	if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("stopping the runtime of a killed build (pid %d): %w", pid, err)
	}
	return waitUntil(same, func() error {
		return fmt.Errorf("the runtime of a killed build (pid %d) still runs %s after SIGKILL", pid, stopTimeout)
	})
}

// emptyCgroups SIGKILLs every process in the cgroup dirs until none is
// left (a process may fork until it is killed), thawing them first: a
// frozen process takes no signal (a build killed while its runtime froze
// the cgroup to signal it leaves it frozen). On cgroup v2 the kernel
// kills the whole cgroup at once (cgroup.kill, Linux 5.14 on).
func emptyCgroups(dirs []string) error {
	for _, dir := range dirs {
		_ = os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0) // cgroup v1
		_ = os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte("0"), 0)      // v2
	}
	procs := func() []int {
		var pids []int
		for _, dir := range dirs {
			b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
		}
		return pids
	}
	return waitUntil(func() bool {
		for _, dir := range dirs {
			_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
		}
		pids := procs()
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		return len(pids) > 0
	}, func() error {
		return fmt.Errorf("cgroups %v still hold processes %v %s after SIGKILL", dirs, procs(), stopTimeout)
	})
}

// waitUntil polls busy until it reports false, or returns timedOut's
// error after stopTimeout.
func waitUntil(busy func() bool, timedOut func() error) error {
	deadline := time.Now().Add(stopTimeout)
	for busy() {
		if time.Now().After(deadline) {
			return timedOut()
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// bootID names this boot of the machine ("-" if the kernel does not say).
func bootID() string {
	id, err := owner.BootID()
	if err != nil {
		return "-"
	}
	return id
}
