package userns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The environment that tells the copy Run starts which stage it is in:
// stageWait until its maps are written, stageInside once it is uid 0.
const (
	stageEnv    = "_STRATA_USERNS_STAGE"
	parentEnv   = "_STRATA_USERNS_PARENT"
	stageWait   = "wait"
	stageInside = "inside"
	syncFD      = 3 // the pipe the parent writes one byte to once the maps are written
)

// Options say what Run runs.
type Options struct {
	// Args are the arguments after the program name.
	Args []string
	// Env is the environment; nil means os.Environ().
	Env []string
	// Stdin, Stdout and Stderr are the copy's; pass the *os.File of a
	// terminal to keep it one.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// forwarded are the signals Run passes on to the copy it waits for.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// Run runs this program again (/proc/self/exe) with o.Args in a new user
// and mount namespace with p's maps, waits for it and returns its exit
// status (128+N when signal N killed it). While it waits it passes SIGINT,
// SIGTERM, SIGHUP and SIGQUIT on to the copy instead of dying of them, and
// a cancelled ctx sends it SIGTERM; the copy dies if this process does.
// The copy must call Resume first thing.
func Run(ctx context.Context, p *Plan, o Options) (int, error) {
	sync, ready, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("starting the rootless build: %w", err)
	}
	defer ready.Close()
	env := o.Env
	if env == nil {
		env = os.Environ()
	}
	cmd := exec.Command("/proc/self/exe", o.Args...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(env, stageEnv+"="+stageWait, parentEnv+"="+strconv.Itoa(os.Getpid()))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = o.Stdin, o.Stdout, o.Stderr
	cmd.ExtraFiles = []*os.File{sync}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
	}
	// Pdeathsig fires when the forking thread ends: keep it until Wait.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sigs := make(chan os.Signal, 4)
	for _, sig := range forwarded {
		// nohup's SIGHUP stays ignored, here and in the copy, as the
		// copy's cli.Main keeps it; the others stop the build even when
		// started ignored (a script's background job), as a rootful
		// build stops.
		if sig != syscall.SIGHUP || !signal.Ignored(sig) {
			signal.Notify(sigs, sig)
		}
	}
	defer signal.Stop(sigs)

	err = cmd.Start()
	sync.Close()
	if err != nil {
		return 0, startError(err)
	}
	if err := writeMaps(cmd.Process.Pid, p); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return 0, err
	}
	if _, err := ready.Write([]byte{1}); err != nil {
		// The copy ended before it was told to go on: killed by a
		// signal (a ^C to the terminal's process group, at once), its
		// status says so; else it is this error.
		_ = cmd.Process.Kill()
		if code, werr := exitStatus(cmd, cmd.Wait()); werr == nil && code > 128 && code != 128+int(syscall.SIGKILL) {
			return code, nil
		}
		return 0, fmt.Errorf("starting the rootless build: %w", err)
	}
	ready.Close()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			ctx = context.Background() // once
		case err := <-waited:
			return exitStatus(cmd, err)
		}
	}
}

// startError explains why the namespace could not be made.
func startError(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EUSERS) ||
		errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EACCES) {
		return &PrereqError{
			Missing: fmt.Sprintf("the kernel refused to create a user namespace (%v)", err),
			Fix: "user namespaces must be enabled for users other than root: check the sysctls " +
				"user.max_user_namespaces (> 0), kernel.unprivileged_userns_clone (1, Debian and Ubuntu) and " +
				"kernel.apparmor_restrict_unprivileged_userns (0, Ubuntu); in a container, its seccomp profile must allow unshare",
		}
	}
	return fmt.Errorf("starting the rootless build: %w", err)
}

// exitStatus turns what Wait returned into an exit status.
func exitStatus(cmd *exec.Cmd, err error) (int, error) {
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return 0, fmt.Errorf("running the rootless build: %w", err)
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return cmd.ProcessState.ExitCode(), nil
}

// writeMaps writes the maps of the namespace of pid: with newuidmap and
// newgidmap, or, with own ids only, directly (which the kernel allows an
// unprivileged process for its own ids once setgroups is denied).
func writeMaps(pid int, p *Plan) error {
	if p.newuidmap == "" {
		dir := "/proc/" + strconv.Itoa(pid) + "/"
		for _, w := range []struct{ file, data string }{
			{"setgroups", "deny"},
			{"uid_map", p.Maps.UIDs.procFormat()},
			{"gid_map", p.Maps.GIDs.procFormat()},
		} {
			if err := os.WriteFile(dir+w.file, []byte(w.data), 0); err != nil {
				return fmt.Errorf("mapping your own ids in the user namespace: %w", err)
			}
		}
		return nil
	}
	for _, h := range []struct {
		bin  string
		m    IDMap
		file string
	}{{p.newuidmap, p.Maps.UIDs, subUIDFile}, {p.newgidmap, p.Maps.GIDs, subGIDFile}} {
		out, err := exec.Command(h.bin, append([]string{strconv.Itoa(pid)}, h.m.args()...)...).CombinedOutput()
		if err != nil {
			msg := strings.TrimSpace(string(out))
			if msg == "" {
				msg = err.Error()
			}
			return &PrereqError{
				Missing: fmt.Sprintf("%s refused the map %s: %s", h.bin, h.m, msg),
				Fix:     fmt.Sprintf("check your ranges in %s, and that %s may run setuid (not on a nosuid mount)", h.file, h.bin),
			}
		}
	}
	return nil
}

// Resume continues this program's start when Run started it, and must be
// called before anything else in main. In the first stage it waits until
// Run has written its maps and executes itself again, now uid 0 with the
// namespace's capabilities (it returns only on error). In the second it
// makes every mount private, arranges to die with Run's process, and
// returns true: the program then does its work. Started any other way, it
// returns false at once.
func Resume() (inside bool, err error) {
	switch os.Getenv(stageEnv) {
	case "":
		return false, nil
	case stageWait:
		f := os.NewFile(syncFD, "userns-sync")
		b := make([]byte, 1)
		n, _ := f.Read(b)
		f.Close()
		if n != 1 {
			return false, errors.New("entering the user namespace: the parent process did not map ids")
		}
		if err := os.Setenv(stageEnv, stageInside); err != nil {
			return false, err
		}
		err := syscall.Exec("/proc/self/exe", os.Args, os.Environ())
		return false, fmt.Errorf("entering the user namespace: executing %s: %w", os.Args[0], err)
	case stageInside:
		parent, _ := strconv.Atoi(os.Getenv(parentEnv))
		if err := errors.Join(os.Unsetenv(stageEnv), os.Unsetenv(parentEnv)); err != nil {
			return false, err
		}
		return true, settle(parent)
	}
	return false, fmt.Errorf("entering the user namespace: bad %s=%q", stageEnv, os.Getenv(stageEnv))
}

// settle prepares the copy's namespace once it is uid 0 there.
func settle(parent int) error {
	if !Inside() || os.Geteuid() != 0 {
		return errors.New("entering the user namespace: not uid 0 in a user namespace")
	}
	// Gaining capabilities at execve cleared the parent-death signal.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("entering the user namespace: %w", err)
	}
	if os.Getppid() != parent {
		return errors.New("entering the user namespace: the parent process is gone")
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("entering the user namespace: making mounts private: %w", err)
	}
	return nil
}
