package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	runc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/internal/userns"
)

// killInterval is how often a cancelled run re-sends SIGKILL until the
// runtime reports the container gone (the first may land before the
// container exists).
const killInterval = 50 * time.Millisecond

// Run runs o.Args in o.Rootfs with the OCI runtime and waits for it to exit.
// A non-zero exit is an *ExitError. When ctx is cancelled the container is
// killed and Run returns ctx's error. On every path the container, its
// runtime state and cgroup, the bundle, and the mount stubs left in the
// rootfs are removed.
func Run(ctx context.Context, o Options) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	rootless := userns.Inside()
	if rootless {
		if err := checkRootlessLimits(o); err != nil {
			return err
		}
	}
	o, err = o.withDefaults()
	if err != nil {
		return fmt.Errorf("sandbox options: %w", err)
	}
	if o.Rootfs, err = filepath.Abs(o.Rootfs); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	if fi, err := os.Stat(o.Rootfs); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("rootfs %s is not a directory", o.Rootfs)
	}
	u, err := lookupUser(o.Rootfs, o.User)
	if err != nil {
		return err
	}
	// The working directory is a change the caller keeps: create it before
	// recording stubs so it is never taken for one.
	if err := makeCwd(o.Rootfs, o.Cwd); err != nil {
		return err
	}
	stubs, err := RecordStubs(o.Rootfs, mountTargets(o))
	if err != nil {
		return err
	}
	defer func() {
		if cerr := stubs.Clean(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	if err := stubs.MakeParents(); err != nil {
		return err
	}

	bundle, err := makeBundle(o)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, removeDir("bundle", bundle)) }()
	files, err := writeInitFiles(bundle, o)
	if err != nil {
		return err
	}
	spec := buildSpec(o, u, files)
	if spec.Linux.Seccomp, err = defaultSeccomp(); err != nil {
		return err
	}
	if rootless {
		if err := makeRootless(spec, o, u); err != nil {
			return err
		}
	} else {
		limitResources(spec.Linux.Resources, o)
	}
	b, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return fmt.Errorf("encoding runtime config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600); err != nil {
		return fmt.Errorf("writing runtime config: %w", err)
	}

	err = execute(ctx, o, bundle)
	var exit *ExitError
	if err != nil && !errors.As(err, &exit) && ctx.Err() == nil {
		err = explainStart(o, err)
	}
	return err
}

// makeBundle creates the container's bundle dir: StateDir/<ID>.bundle,
// where Reap finds it after a crash, or a temp dir when there is no
// StateDir.
func makeBundle(o Options) (string, error) {
	if o.StateDir == "" {
		dir, err := os.MkdirTemp("", "strata-bundle-")
		if err != nil {
			return "", fmt.Errorf("creating bundle: %w", err)
		}
		return dir, nil
	}
	if err := os.MkdirAll(o.StateDir, 0o711); err != nil {
		return "", fmt.Errorf("creating runtime state dir: %w", err)
	}
	dir := filepath.Join(o.StateDir, o.ID+bundleSuffix)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("creating bundle: container id %s is in use", o.ID)
		}
		return "", fmt.Errorf("creating bundle: %w", err)
	}
	return dir, nil
}

// execute runs the container of bundle with the runtime and maps its outcome
// to Run's errors. The container's state and cgroup are gone when it
// returns.
func execute(ctx context.Context, o Options, bundle string) (err error) {
	stateDir := o.StateDir
	if stateDir == "" {
		if stateDir, err = os.MkdirTemp("", "strata-runc-"); err != nil {
			return fmt.Errorf("creating runtime state dir: %w", err)
		}
		defer func() { err = errors.Join(err, removeDir("runtime state dir", stateDir)) }()
	}
	r := &runc.Runc{
		Command:   o.Runtime,
		Root:      stateDir,
		Log:       filepath.Join(bundle, "runtime.log"),
		LogFormat: runc.JSON,
		// Own process group: a terminal's ^C reaches strata, which cancels
		// ctx, rather than racing it to the runtime.
		Setpgid: true,
	}
	o.Log.Debug("running", "id", o.ID, "args", o.Args, "user", o.User, "cwd", o.Cwd, "network", o.Network, "rootfs", o.Rootfs)
	start := time.Now()
	status, runErr := runForeground(ctx, r, o, bundle)
	cleanErr := remove(ctx, r, o.ID, stateDir)
	o.Log.Debug("ran", "id", o.ID, "status", status, "elapsed", time.Since(start))
	if ctx.Err() != nil {
		return errors.Join(fmt.Errorf("running %s: %w", o.Args[0], ctx.Err()), cleanErr)
	}
	if runErr == nil && status == 0 {
		return cleanErr
	}
	// The runtime logs why it could not create or start the container
	// (exit status 1 then is its own, not the process's).
	if msg := runtimeError(r.Log); msg != "" {
		runErr = errors.New(msg)
	}
	if runErr != nil {
		return errors.Join(fmt.Errorf("running %s: %w", o.Runtime, runErr), cleanErr)
	}
	if cleanErr != nil {
		return errors.Join(&ExitError{Status: status}, cleanErr)
	}
	return &ExitError{Status: status}
}

// runForeground runs the container in the foreground and returns its exit status. On
// ctx cancel it SIGKILLs the container until the runtime returns.
func runForeground(ctx context.Context, r *runc.Runc, o Options, bundle string) (int, error) {
	// The runtime's own commands must outlive ctx: killing `runc run`
	// would orphan the container rather than stop it.
	rctx := context.WithoutCancel(ctx)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		t := time.NewTicker(killInterval)
		defer t.Stop()
		for {
			_ = r.Kill(rctx, o.ID, int(unix.SIGKILL), nil)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	// The bundle names the runtime process once it runs: a build killed
	// from here on leaves it running, and the next one stops it (Reap).
	started := make(chan int, 1)
	wg.Go(func() {
		if pid, ok := <-started; ok {
			// A runtime already gone (and waited for) needs no record.
			if err := recordRuntime(bundle, pid); err != nil && !errors.Is(err, fs.ErrNotExist) {
				o.Log.Warn("the container's runtime may outlive a killed build", "id", o.ID, "err", err)
			}
		}
	})
	status, err := r.Run(rctx, o.ID, bundle, &runc.CreateOpts{IO: &stdio{o.Stdout, o.Stderr}, Started: started})
	close(done)
	wg.Wait()
	var exitErr *runc.ExitError
	if errors.As(err, &exitErr) {
		err = nil // the status says it
	}
	return status, err
}

// remove deletes the container's runtime state (and with it its cgroup).
// A foreground run has usually deleted it already when it returns: the
// runtime is then not started again (a `runc delete` costs 5-10 ms), since
// without the state it would find nothing to delete.
func remove(ctx context.Context, r *runc.Runc, id, stateDir string) error {
	gone := func() bool {
		_, err := os.Lstat(filepath.Join(stateDir, id))
		return errors.Is(err, fs.ErrNotExist)
	}
	if gone() {
		return nil
	}
	err := r.Delete(context.WithoutCancel(ctx), id, &runc.DeleteOpts{Force: true})
	if gone() {
		return nil
	}
	if err == nil {
		err = errors.New("its state is still there after the runtime deleted it")
	}
	return fmt.Errorf("deleting container %s: %w", id, err)
}

// removeDir removes dir, one of Run's temp dirs described by what.
func removeDir(what, dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing %s: %w", what, err)
	}
	return nil
}

// runtimeError returns the last error the runtime logged (it could not
// create or start the container), or "".
func runtimeError(logPath string) string {
	f, err := os.Open(logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	var msg string
	s := bufio.NewScanner(f)
	for s.Scan() {
		var rec struct{ Level, Msg string }
		if json.Unmarshal(s.Bytes(), &rec) == nil && (rec.Level == "error" || rec.Level == "fatal") {
			msg = rec.Msg
		}
	}
	return msg
}

// makeCwd creates dir inside rootfs when missing, with its missing parents,
// root-owned and 0755 as docker creates a WORKDIR.
func makeCwd(rootfs, dir string) error {
	if err := makeRootDirs(rootfs, dir); err != nil {
		return fmt.Errorf("creating working directory %s: %w", dir, err)
	}
	return nil
}

// stdio connects the runtime's (and so the process's) stdout and stderr to
// the caller's writers, and stdin to /dev/null. With no terminal the runtime
// hands its own stdio to the process, so output streams live.
type stdio struct{ stdout, stderr io.Writer }

func (s *stdio) Set(cmd *exec.Cmd) {
	cmd.Stdout, cmd.Stderr = s.stdout, s.stderr
	// Do not wait forever for output copying if a descendant escaped
	// with the pipe.
	cmd.WaitDelay = 5 * time.Second
}
func (s *stdio) Close() error          { return nil }
func (s *stdio) Stdin() io.WriteCloser { return nil }
func (s *stdio) Stdout() io.ReadCloser { return nil }
func (s *stdio) Stderr() io.ReadCloser { return nil }

var _ runc.IO = (*stdio)(nil)

// Reap kills and deletes the containers in the runtime state dir for which
// stale reports true: those left by a process that was killed before it
// could clean up (SIGKILL, a crash). It also removes their bundles
// (<id>.bundle, see Options.StateDir), and the bundles of stale ids that
// have no container (killed before the runtime made it, or after it
// deleted it). First it stops what the runtime of each may still be doing
// (stopStale): a container killed while it was set up has no state yet.
// It returns the ids whose container or bundle it removed.
func Reap(ctx context.Context, runtime, stateDir string, stale func(id string) bool) ([]string, error) {
	entries, err := os.ReadDir(stateDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if runtime == "" {
		runtime = "runc"
	}
	r := &runc.Runc{Command: runtime, Root: stateDir}
	var reaped, bundles, containers []string
	failed := map[string]bool{}
	var errs []error
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), bundleSuffix); ok {
			if e.IsDir() && stale(id) {
				bundles = append(bundles, id)
			}
		} else if e.IsDir() && stale(e.Name()) {
			containers = append(containers, e.Name())
		}
	}
	for _, id := range bundles {
		if err := stopStale(stateDir, id); err != nil {
			errs = append(errs, err)
			failed[id] = true
		}
	}
	for _, id := range containers {
		_ = r.Kill(ctx, id, int(unix.SIGKILL), &runc.KillOpts{All: true})
		if err := remove(ctx, r, id, stateDir); err != nil {
			errs = append(errs, err)
			failed[id] = true
			continue
		}
		reaped = append(reaped, id)
	}
	for _, id := range bundles {
		if failed[id] {
			continue // its container may still run: keep what it uses
		}
		if err := removeCgroups(id); err != nil {
			errs = append(errs, err)
		}
		if err := removeDir("bundle of "+id, filepath.Join(stateDir, id+bundleSuffix)); err != nil {
			errs = append(errs, err)
			continue
		}
		if !slices.Contains(reaped, id) {
			reaped = append(reaped, id)
		}
	}
	return reaped, errors.Join(errs...)
}
