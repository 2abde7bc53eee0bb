package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratabuild/strata/recipe"
)

// The exit codes of strata.
const (
	ExitOK          = 0
	ExitBuildFailed = 1
	ExitUsage       = 2
)

// Builder runs a build; it returns what goes to stdout: the image digest
// ("sha256:…"), or the plan of a dry run. It writes progress and logs to
// stderr, never to stdout.
type Builder func(ctx context.Context, req Request, r *recipe.Recipe, stderr io.Writer) (string, error)

// exitError carries an exit code; printed is true when the message has
// already been written to stderr.
type exitError struct {
	code    int
	err     error
	printed bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr returns an error that exits 2.
func usageErr(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// New returns the strata command; b runs builds (nil: BuildImage).
func New(b Builder) *cobra.Command {
	if b == nil {
		b = BuildImage
	}
	root := &cobra.Command{
		Use:           "strata",
		Short:         "Build OCI images from a YAML recipe, without a Dockerfile or a daemon",
		SilenceErrors: true,
		SilenceUsage:  true,
		// strata --version prints what strata version does.
		Version: versionString(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErr("%v (see %s --help)", err, c.CommandPath())
	})
	root.AddCommand(newBuild(b), newValidate(), newDiff(), newConvert(), newSchema(), newPrune(), newVersion())
	return root
}

// Main runs strata with args (without the program name) and returns the
// exit code. It stops the build, cleaning up, on SIGINT, SIGTERM and
// SIGHUP (the terminal closed, an SSH session dropped), which would
// otherwise kill it and leave a running step behind — SIGHUP unless it
// started ignored (nohup). Once stopping, and a grace period later, the
// signals take their default action again: a second ^C then ends a build
// stuck where it cannot be stopped (writing to a FIFO no one reads),
// while the same signal arriving twice at once (a rootless build's copy
// gets the terminal's and its parent's) does not cut its clean-up short.
func Main(args []string, stdout, stderr io.Writer, b Builder) int {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) {
		sigs = append(sigs, syscall.SIGHUP)
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	defer stop()
	go func() {
		<-ctx.Done()
		time.Sleep(signalGrace)
		stop()
	}()
	return Run(ctx, args, stdout, stderr, b)
}

// stopOnClosedOutput gives the build command a context that ends, as
// on ^C, when what reads its stdout or stderr goes away (stopOnEPIPE).
func stopOnClosedOutput(cmd *cobra.Command) (cancel func()) {
	ctx, cancel := context.WithCancel(cmd.Context())
	cmd.SetContext(ctx)
	cmd.SetOut(stopOnEPIPE(cmd.OutOrStdout(), cancel))
	cmd.SetErr(stopOnEPIPE(cmd.ErrOrStderr(), cancel))
	return cancel
}

// stopOnEPIPE makes a build stop (cancel) when what reads its stdout or
// stderr goes away: `strata build . 2>&1 | tee log` and a ^C that ends
// tee first, a `| head`. Go's default would kill strata at its next write
// there, of SIGPIPE, as abruptly as SIGKILL, leaving its step running and
// its overlay mounted. With SIGPIPE handled, such a write fails with
// EPIPE instead, and the build stops and cleans up as on ^C; later writes
// there are dropped. Other commands keep the default: `strata diff A B |
// head` ends quietly, as any command line tool. Commands strata runs get
// SIGPIPE's default action back, and an EPIPE on another descriptor (a
// registry's connection) is the error of the code writing there.
func stopOnEPIPE(w io.Writer, cancel func()) io.Writer {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	return &pipeWatch{w: w, gone: cancel}
}

// pipeWatch is a writer whose reader may go away; see stopOnEPIPE.
type pipeWatch struct {
	w      io.Writer
	gone   func()
	closed atomic.Bool
}

// Write writes b; after an EPIPE, nothing more, failing as it did (the
// progress writers drop the error; the digest's write fails the command).
func (p *pipeWatch) Write(b []byte) (int, error) {
	if p.closed.Load() {
		return 0, syscall.EPIPE
	}
	n, err := p.w.Write(b)
	if errors.Is(err, syscall.EPIPE) {
		p.closed.Store(true)
		p.gone()
	}
	return n, err
}

// File is the file written to, if it is one (a terminal gets the live
// view).
func (p *pipeWatch) File() *os.File {
	f, _ := p.w.(*os.File)
	return f
}

// signalGrace is how long after the first stop signal the next ones are
// still taken as the same: long past a signal's copies, short for a user
// pressing ^C again.
const signalGrace = 2 * time.Second

// Run is Main with a context.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, b Builder) int {
	cmd := New(b)
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.SetIn(nil)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		// Errors of cobra itself: unknown command, wrong arguments.
		ee = &exitError{code: ExitUsage, err: err}
	}
	if !ee.printed {
		fmt.Fprintf(stderr, "strata: %v\n", ee.err)
	}
	return ee.code
}
