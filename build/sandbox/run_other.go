//go:build !linux

package sandbox

import (
	"context"
	"errors"
)

// Run runs one process in a container; it needs Linux.
func Run(ctx context.Context, o Options) error {
	return errors.ErrUnsupported
}

// Reap removes stale containers; it needs Linux.
func Reap(ctx context.Context, runtime, stateDir string, stale func(id string) bool) ([]string, error) {
	return nil, errors.ErrUnsupported
}

// KillStale kills stale containers; it needs Linux.
func KillStale(ctx context.Context, runtime, stateDir string, stale func(id string) bool) []string {
	return nil
}
