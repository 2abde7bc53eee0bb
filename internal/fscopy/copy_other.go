//go:build !linux

package fscopy

import (
	"context"
	"errors"
)

// Copy is only implemented on Linux.
func Copy(ctx context.Context, srcRoot string, sources []string, dstRoot, dest string, o Options) (Stats, error) {
	return Stats{}, errors.ErrUnsupported
}

// WriteFile is only implemented on Linux.
func WriteFile(ctx context.Context, dstRoot, dest string, content []byte, o Options) error {
	return errors.ErrUnsupported
}
