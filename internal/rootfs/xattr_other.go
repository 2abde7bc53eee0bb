//go:build !linux

package rootfs

import (
	"errors"
)

// Xattrs needs Linux.
func Xattrs(string, func(string) bool) (map[string]string, error) { return nil, errors.ErrUnsupported }

// XattrNames needs Linux.
func XattrNames(string) ([]string, error) { return nil, errors.ErrUnsupported }

// Xattr needs Linux.
func Xattr(string, string) ([]byte, error) { return nil, errors.ErrUnsupported }
