package build

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/stratabuild/strata/build/sandbox"
	"github.com/stratabuild/strata/recipe"
)

// secretDir is where secrets are written for the time of a step: a tmpfs,
// so their bytes stay in memory and never touch the state dir.
var secretDir = "/dev/shm"

// loadSecrets reads every --secret the needed stages use, before anything
// runs: a secret a step needs but the command line does not give is an
// error naming the step.
func (b *builder) loadSecrets(stages []*recipe.Stage) error {
	given := map[string]Secret{}
	for _, s := range b.opts.Secrets {
		given[s.ID] = s
	}
	b.secrets = map[string][]byte{}
	var errs []error
	for _, st := range stages {
		for _, step := range st.Steps {
			if step.Kind != recipe.RunStep {
				continue
			}
			for _, m := range step.Run.Mounts {
				if m.Type != recipe.MountSecret {
					continue
				}
				if _, ok := b.secrets[m.ID]; ok {
					continue
				}
				s, ok := given[m.ID]
				if !ok {
					errs = append(errs, fmt.Errorf("%s: step %d needs secret %q: give it with --secret id=%s,src=FILE (or env=VAR)",
						stepPos(step.Pos), step.Index+1, m.ID, m.ID))
					continue
				}
				data, err := readSecret(s)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: step %d: %w", stepPos(step.Pos), step.Index+1, err))
					continue
				}
				b.secrets[m.ID] = data
			}
		}
	}
	return errors.Join(errs...)
}

func readSecret(s Secret) ([]byte, error) {
	if s.Env != "" {
		v, ok := os.LookupEnv(s.Env)
		if !ok {
			return nil, fmt.Errorf("secret %q: environment variable %s is not set", s.ID, s.Env)
		}
		return []byte(v), nil
	}
	data, err := os.ReadFile(s.Src)
	if err != nil {
		return nil, fmt.Errorf("secret %q: %w", s.ID, err)
	}
	return data, nil
}

// mounts turns a run step's cache, secret and tmpfs mounts into sandbox
// mounts. The returned cleanup unlocks the caches and removes the
// secrets' files; it must run when the step ends, on every path.
func (b *builder) mounts(step *recipe.Step) (ms []sandbox.Mount, cleanup func(), err error) {
	var undo []func()
	cleanup = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	for _, m := range step.Run.Mounts {
		switch m.Type {
		case recipe.MountTmpfs:
			ms = append(ms, sandbox.Mount{Type: "tmpfs", Target: m.Target})
		case recipe.MountCache:
			dir := filepath.Join(b.opts.Root, "cache", "mounts", hex.EncodeToString([]byte(m.ID)))
			unlock, err := lockDir(dir)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: cache mount %s: %w", stepPos(step.Pos), m.ID, err)
			}
			undo = append(undo, unlock)
			ms = append(ms, sandbox.Mount{Type: "bind", Source: filepath.Join(dir, "data"), Target: m.Target})
		case recipe.MountSecret:
			dir, err := os.MkdirTemp(secretDir, "strata-secret-")
			if err != nil {
				return nil, nil, fmt.Errorf("%s: secret %s: %w", stepPos(step.Pos), m.ID, err)
			}
			undo = append(undo, func() { os.RemoveAll(dir) })
			file := filepath.Join(dir, "secret")
			if err := os.WriteFile(file, b.secrets[m.ID], 0o400); err != nil {
				return nil, nil, fmt.Errorf("%s: secret %s: %w", stepPos(step.Pos), m.ID, err)
			}
			ms = append(ms, sandbox.Mount{Type: "bind", Source: file, Target: m.Target, ReadOnly: true})
		default:
			return nil, nil, fmt.Errorf("%s: unknown mount type %q", m.Pos, m.Type)
		}
	}
	return ms, cleanup, nil
}

// lockDir makes dir/data and takes an exclusive lock on dir/lock, waiting
// while another build's step uses the same cache.
func lockDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking: %w", err)
	}
	return func() { f.Close() }, nil
}

// redactions are the secrets' values as they could appear in a step's
// output; empty and very short values are left alone.
func (b *builder) redactions(step *recipe.Step) []string {
	var out []string
	for _, m := range step.Run.Mounts {
		if v := b.secrets[m.ID]; m.Type == recipe.MountSecret && len(v) >= 4 {
			// The whole value, and each line of a multi-line one, since
			// output is handled line by line.
			out = append(out, trimNewline(string(v)))
			for _, line := range strings.Split(string(v), "\n") {
				if line = trimNewline(line); len(line) >= 8 {
					out = append(out, line)
				}
			}
		}
	}
	return out
}

func trimNewline(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}
