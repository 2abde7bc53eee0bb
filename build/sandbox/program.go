package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"

	"github.com/stratabuild/strata/internal/rootfs"
)

// ErrNoProgram is wrapped by Run's error when the process could not start
// because its program is not in the rootfs.
var ErrNoProgram = errors.New("not in the step's filesystem")

// explainStart rewords err, the runtime's failure to start the process,
// when the program it names by absolute path is not in the rootfs — what
// a run step in a stage from scratch meets first: the runtime's own
// message names only a stat that failed. Where the rootfs has no /bin/sh
// either, it says how to run something without a shell. A program under a mount target
// (a cache, a secret) is not judged: the mount is not seen from here.
func explainStart(o Options, err error) error {
	prog := o.Args[0]
	if !path.IsAbs(prog) {
		return err
	}
	for _, t := range mountTargets(o) {
		if prog == t || len(prog) > len(t) && prog[:len(t)] == t && prog[len(t)] == '/' {
			return err
		}
	}
	host, rerr := rootfs.Resolve(o.Rootfs, prog, rootfs.Clamp)
	if rerr != nil {
		return err
	}
	if _, serr := os.Stat(host); !errors.Is(serr, fs.ErrNotExist) {
		return err
	}
	if sh, serr := rootfs.Resolve(o.Rootfs, "/bin/sh", rootfs.Clamp); serr == nil {
		if _, serr := os.Stat(sh); serr == nil {
			return fmt.Errorf("%s is %w", prog, ErrNoProgram) // a mistyped path, not a missing shell
		}
	}
	return fmt.Errorf("%s is %w (a stage from scratch has no shell: copy in what it runs, or give run as a list naming a program the stage has)", prog, ErrNoProgram)
}
