//go:build !linux

package userns

import (
	"context"
	"errors"
	"io"
)

// Plan is what Check found; rootless builds need Linux.
type Plan struct {
	// Maps are the namespace's maps.
	Maps Maps
	// Warning says why only the user's own ids are mapped.
	Warning string
}

// Options say what Run runs.
type Options struct {
	Args           []string
	Env            []string
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Inside is false outside Linux.
func Inside() bool { return false }

// CurrentMaps returns errors.ErrUnsupported outside Linux.
func CurrentMaps() (Maps, error) { return Maps{}, errors.ErrUnsupported }

// Check returns errors.ErrUnsupported outside Linux.
func Check() (*Plan, error) { return nil, errors.ErrUnsupported }

// Run returns errors.ErrUnsupported outside Linux.
func Run(ctx context.Context, p *Plan, o Options) (int, error) { return 0, errors.ErrUnsupported }

// Resume does nothing outside Linux.
func Resume() (bool, error) { return false, nil }
