package build

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/stratabuild/strata/build/plan"
	"github.com/stratabuild/strata/build/sandbox"
	"github.com/stratabuild/strata/internal/stateroot"
	"github.com/stratabuild/strata/recipe"
)

// mounts turns a run step's cache, secret and tmpfs mounts into sandbox
// mounts. The returned cleanup unlocks the caches and removes the
// secrets' files; it must run when the step ends, on every path.
func (e *executor) mounts(ctx context.Context, s *plan.Step) (ms []sandbox.Mount, cleanup func(), err error) {
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
	// Each cache once (one id at two targets is one dir at both), all in
	// one order, so that no two steps wait on each other.
	var ids []string
	for _, m := range s.Mounts {
		if m.Type == recipe.MountCache && !slices.Contains(ids, m.ID) {
			ids = append(ids, m.ID)
		}
	}
	slices.Sort(ids)
	caches := map[string]string{}
	for _, id := range ids {
		data, unlock, err := e.root.LockCacheMount(ctx, id, func() {
			e.emit(Event{Kind: EventInfo, Time: time.Now(), Pos: s.Pos, Text: s.Pos + ": waiting for cache mount " + id + ", used by another step"})
		})
		if err != nil {
			return nil, nil, fmt.Errorf("%s: cache mount %s: %w", s.Pos, id, err)
		}
		undo = append(undo, unlock)
		caches[id] = data
	}
	for _, m := range s.Mounts {
		switch m.Type {
		case recipe.MountTmpfs:
			ms = append(ms, sandbox.Mount{Type: "tmpfs", Target: m.Target})
		case recipe.MountCache:
			ms = append(ms, sandbox.Mount{Type: "bind", Source: caches[m.ID], Target: m.Target})
		case recipe.MountSecret:
			file, remove, err := stateroot.WriteSecret(e.o.Secrets[m.ID])
			if err != nil {
				return nil, nil, fmt.Errorf("%s: secret %s: %w", s.Pos, m.ID, err)
			}
			undo = append(undo, remove)
			ms = append(ms, sandbox.Mount{Type: "bind", Source: file, Target: m.Target, ReadOnly: true})
		default:
			return nil, nil, fmt.Errorf("%s: unknown mount type %q", m.Pos, m.Type)
		}
	}
	return ms, cleanup, nil
}

// redactions are the step's secrets' values as they could appear in its
// output; empty and very short values are left alone.
func (e *executor) redactions(s *plan.Step) []string {
	var secrets [][]byte
	for _, m := range s.Mounts {
		if m.Type == recipe.MountSecret {
			secrets = append(secrets, e.o.Secrets[m.ID])
		}
	}
	return sandbox.Redactions(secrets)
}
