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
