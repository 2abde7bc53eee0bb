package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/build/sandbox"
	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/stateroot"
	"github.com/stratabuild/strata/internal/userns"
	"github.com/stratabuild/strata/layers"
)

// Rootless makes strata rootless when a user other than root runs a
// command that needs the namespace: build (unpacking, overlay mounts,
// steps) and prune (removing snapshots whose files subordinate ids own).
// Call it first in main with the arguments after the program name; when
// exit is true, exit with code, else go on to Main.
//
// Run by such a user, it checks the prerequisites (exit 2 with what is
// missing and how to fix it, before anything runs), then runs strata again
// with the same arguments in a user and mount namespace and returns its
// exit code. The state directory defaults to $XDG_DATA_HOME/strata (the
// copy gets it as STRATA_ROOT). Before a build it stops the steps a killed
// rootless build left running, which only the user outside the namespace
// may signal. In the copy, it puts secrets in the user's runtime dir and,
// for a build, mounts a test overlay in the state directory before the
// build starts.
func Rootless(args []string, stdin, stdout, stderr *os.File) (code int, exit bool) {
	inside, err := userns.Resume()
	if err != nil {
		fmt.Fprintf(stderr, "strata: %v\n", err)
		return ExitBuildFailed, true
	}
	if inside {
		if err := prepareNamespace(args); err != nil {
			fmt.Fprintf(stderr, "strata: %v\n", err)
			return exitCode(err), true
		}
		return 0, false
	}
	if os.Geteuid() == 0 {
		return 0, false
	}
	c, ok := namespacedCommand(args)
	if !ok {
		return 0, false
	}
	// fail reports err, a missing prerequisite naming the command.
	fail := func(err error) int {
		var pe *userns.PrereqError
		if errors.As(err, &pe) && pe.Command == "" {
			pe.Command = c.name
		}
		fmt.Fprintf(stderr, "strata: %v\n", err)
		return exitCode(err)
	}
	plan, err := userns.Check()
	if err != nil {
		return fail(err), true
	}
	if plan.Warning != "" && !c.quiet {
		fmt.Fprintf(stderr, "strata: warning: %s\n", plan.Warning)
	}
	env, root := os.Environ(), c.root
	if root == "" {
		root = stateroot.DefaultDir()
		env = append(env, "STRATA_ROOT="+root)
		if err := makeDefaultRoot(c, root); err != nil {
			return fail(err), true
		}
	}
	if err := checkRootWritable(c, root, plan.Maps); err != nil {
		return fail(err), true
	}
	if c.name == "build" {
		// Only from here can the steps of a killed rootless build be
		// stopped; the build's own clean-up removes them then.
		sandbox.KillStale(context.Background(), c.runtime, stateroot.RuntimeOf(root), stateroot.Stale)
	}
	code, err = userns.Run(context.Background(), plan, userns.Options{
		Args: args, Env: env, Stdin: stdin, Stdout: stdout, Stderr: stderr,
	})
	if err != nil {
		fmt.Fprintf(stderr, "strata: %v\n", err)
		return exitCode(err), true
	}
	return code, true
}

// makeDefaultRoot makes the state directory a build uses when neither
// --root nor STRATA_ROOT names one: under $XDG_DATA_HOME or $HOME, which
// may not be writable (HOME=/nonexistent for a service user). Failing,
// it says how to choose one, before anything runs.
func makeDefaultRoot(c namespaced, root string) error {
	if c.name != "build" || os.Getenv("STRATA_ROOT") != "" {
		return nil
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return &userns.PrereqError{
			Missing: fmt.Sprintf("the default state directory %s cannot be made (%v)", root, err),
			Fix:     "pass --root DIR or set STRATA_ROOT to a directory you can write",
		}
	}
	return nil
}

// checkRootWritable refuses, before the namespace is made, a state
// directory root that the user cannot write (or, when it does not exist
// yet, make): one on a read-only filesystem, or another user's, such as
// root's after a build as root, which the namespace cannot write either.
// One owned by the user or by one of her subordinate ids (maps) is left
// to the namespace, where she owns it or has the capabilities over it. prune reports a missing state
// directory itself.
func checkRootWritable(c namespaced, root string, maps userns.Maps) error {
	dir := root
	fi, err := os.Stat(dir)
	for errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		if c.name == "prune" || filepath.Dir(dir) == dir {
			return nil
		}
		dir = filepath.Dir(dir)
		fi, err = os.Stat(dir)
	}
	if err != nil || !fi.IsDir() {
		return nil // the build says what is wrong
	}
	abs, _ := filepath.Abs(root)
	if err := unix.Access(dir, unix.W_OK); errors.Is(err, unix.EROFS) {
		absDir, _ := filepath.Abs(dir)
		return &userns.PrereqError{
			Missing: fmt.Sprintf("the state directory %s is on a read-only filesystem (%s)", abs, absDir),
			Fix:     "choose a state directory on a writable filesystem with --root or STRATA_ROOT",
		}
	}
	st := fi.Sys().(*syscall.Stat_t)
	_, uidMapped := maps.UIDs.Inside(st.Uid)
	_, gidMapped := maps.GIDs.Inside(st.Gid)
	if uidMapped && gidMapped || unix.Access(dir, unix.W_OK|unix.X_OK) == nil {
		return nil
	}
	me := strconv.Itoa(os.Getuid())
	if u, err := user.Current(); err == nil {
		me = u.Username
	}
	owner := strconv.FormatUint(uint64(st.Uid), 10)
	if u, err := user.LookupId(owner); err == nil {
		owner = u.Username
	}
	missing := fmt.Sprintf("the state directory %s is not writable by %s (it is %s's, %v)", abs, me, owner, fi.Mode())
	if dir != root {
		absDir, _ := filepath.Abs(dir)
		missing = fmt.Sprintf("the state directory %s cannot be made: %s is not writable by %s (it is %s's, %v)",
			abs, absDir, me, owner, fi.Mode())
	}
	return &userns.PrereqError{
		Missing: missing,
		Fix:     "choose a state directory of yours with --root or STRATA_ROOT",
	}
}

// exitCode is 2 for a missing prerequisite (the machine's set-up, like a
// bad usage, needs fixing before a retry can work), else 1.
func exitCode(err error) int {
	var pe *userns.PrereqError
	if errors.As(err, &pe) {
		return ExitUsage
	}
	return ExitBuildFailed
}

// namespaced is a command line that needs the namespace.
type namespaced struct {
	name    string // build or prune
	root    string // --root, "" if not given
	dryRun  bool
	quiet   bool
	runtime string // --runtime
}

// namespacedCommand reports whether args run a command that needs the
// namespace. A command line that does not parse does not: Main reports it.
func namespacedCommand(args []string) (namespaced, bool) {
	c, rest, err := New(nil).Find(args)
	if err != nil || (c.Name() != "build" && c.Name() != "prune") || c.Parent() == nil || c.Parent().Parent() != nil {
		return namespaced{}, false
	}
	c.InitDefaultHelpFlag()
	if err := c.ParseFlags(rest); err != nil {
		return namespaced{}, false
	}
	fl := c.Flags()
	if help, _ := fl.GetBool("help"); help {
		return namespaced{}, false
	}
	n := namespaced{name: c.Name()}
	n.root, _ = fl.GetString("root")
	n.dryRun, _ = fl.GetBool("dry-run")
	n.quiet, _ = fl.GetBool("quiet")
	n.runtime, _ = fl.GetString("runtime")
	return n, true
}

// prepareNamespace runs first in the namespaced copy: secrets go to the
// user's runtime dir, and a build checks that overlay mounts work in its
// state directory.
func prepareNamespace(args []string) error {
	maps, err := userns.CurrentMaps()
	if err != nil {
		return err
	}
	if uid, ok := maps.UIDs.Outside(0); ok {
		if err := stateroot.UseUserRuntimeDir(uid); err != nil {
			return err
		}
		commit.ActFor(int(uid)) // her certs.d and auth files, not root's
	}
	c, ok := namespacedCommand(args)
	if !ok || c.name != "build" || c.dryRun {
		return nil
	}
	root := c.root
	if root == "" {
		root = stateroot.DefaultDir()
	}
	return probeOverlay(root)
}

// probeOverlay mounts a test overlay in the state directory root.
func probeOverlay(root string) error {
	abs, _ := filepath.Abs(root)
	err := os.MkdirAll(root, 0o700)
	if err != nil && !errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("state directory %s: %w", root, err)
	}
	if err == nil {
		err = layers.Probe(context.Background(), root)
	}
	// Making a dir refused is not the kernel's doing (a mount refused
	// with EPERM may be): checkRootWritable has named the owner of a state
	// directory the user cannot write before the namespace was made; what
	// it let by (an ACL, say) fails here.
	var pe *fs.PathError
	if errors.As(err, &pe) && strings.HasPrefix(pe.Op, "mkdir") && errors.Is(err, fs.ErrPermission) {
		return &userns.PrereqError{
			Missing: fmt.Sprintf("the state directory %s is not writable in the user namespace: %v", abs, err),
			Fix:     "choose a state directory of yours with --root or STRATA_ROOT",
		}
	}
	if err != nil {
		return &userns.PrereqError{
			Missing: fmt.Sprintf("overlay does not work in a user namespace with the state directory %s: %v", abs, err),
			Fix: "rootless builds need Linux 5.11 or later, and a state directory on a local filesystem such as " +
				"ext4, xfs, btrfs or tmpfs: choose one with --root or STRATA_ROOT",
		}
	}
	return nil
}
