//go:build !linux

package layers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/opencontainers/go-digest"
)

// Store keeps one snapshot dir per diffID. It needs Linux (overlayfs).
type Store struct{}

type tempDir struct{}

var errNotLinux = fmt.Errorf("layers: overlay snapshots need Linux: %w", errors.ErrUnsupported)

// OpenStore returns errors.ErrUnsupported outside Linux.
func OpenStore(root string, log *slog.Logger) (*Store, error) { return nil, errNotLinux }

// OldSnapshots reports false outside Linux.
func OldSnapshots(root string) bool { return false }

// RetireOldSnapshots returns errors.ErrUnsupported outside Linux.
func RetireOldSnapshots(root string) error { return errNotLinux }

// Close does nothing outside Linux.
func (s *Store) Close() {}

// SetLimits does nothing outside Linux.
func (s *Store) SetLimits(l Limits) {}

// Root returns the store's root dir.
func (s *Store) Root() string { return "" }

// Lookup never finds a snapshot outside Linux.
func (s *Store) Lookup(diffID digest.Digest) (dir string, ok bool) { return "", false }

// Unpack returns errors.ErrUnsupported outside Linux.
func (s *Store) Unpack(ctx context.Context, diffID digest.Digest, r io.Reader) (string, error) {
	return "", errNotLinux
}

// NewUpper returns errors.ErrUnsupported outside Linux.
func (s *Store) NewUpper(ctx context.Context) (*Upper, error) { return nil, errNotLinux }

// Commit returns errors.ErrUnsupported outside Linux.
func (s *Store) Commit(u *Upper, diffID digest.Digest) (string, error) { return "", errNotLinux }

// Discard returns errors.ErrUnsupported outside Linux.
func (u *Upper) Discard() error { return errNotLinux }

// Mounted is an overlay mounted by Mount.
type Mounted struct{}

// Mount returns errors.ErrUnsupported outside Linux.
func Mount(ctx context.Context, o MountOptions) (*Mounted, error) { return nil, errNotLinux }

// Unmount returns errors.ErrUnsupported outside Linux.
func (m *Mounted) Unmount() error { return errNotLinux }

// Target returns the dir the merged view is mounted on.
func (m *Mounted) Target() string { return "" }

// Diff returns errors.ErrUnsupported outside Linux.
func Diff(ctx context.Context, w io.Writer, o DiffOptions) (DiffStats, error) {
	return DiffStats{}, errNotLinux
}

// Snapshots is only implemented on Linux.
func (s *Store) Snapshots() ([]digest.Digest, error) { return nil, errNotLinux }

// Remove is only implemented on Linux.
func (s *Store) Remove(ctx context.Context, diffID digest.Digest) error { return errNotLinux }

// Probe returns errors.ErrUnsupported outside Linux.
func Probe(ctx context.Context, dir string) error { return errNotLinux }

// UnmountStale is only implemented on Linux.
func UnmountStale(target string) error { return errNotLinux }
