//go:build !unix

package commit

import (
	"context"
	"errors"
	"fmt"
)

// lockDir is unsupported outside unix.
func lockDir(context.Context, string) (func(), error) {
	return nil, fmt.Errorf("locking an OCI layout: %w", errors.ErrUnsupported)
}

// WritableDir cannot tell outside unix; the write itself will.
func WritableDir(string) error { return nil }
