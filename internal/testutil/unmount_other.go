//go:build !linux

package testutil

import "errors"

func unmountUnder(string) error { return errors.ErrUnsupported }
