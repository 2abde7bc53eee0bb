//go:build !unix

package commit

import (
	"context"
	"errors"
	"fmt"
)

// pidAlive: no way to tell here, so every temp is taken as live.
func pidAlive(int) bool { return true }

// lockDir is unsupported outside unix.
func lockDir(context.Context, string) (func(), error) {
	return nil, fmt.Errorf("locking an OCI layout: %w", errors.ErrUnsupported)
}

// writableDir cannot tell outside unix; the write itself will.
func writableDir(string) error { return nil }
