package commit

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Reencode returns l compressed with c: its tar, decompressed once, is
// compressed again into a new blob in dir (see WriteLayer). The tar is
// the same, so the diffID is too; a tar that hashes otherwise than l's
// diffID says is an error, and no blob is named by it.
func Reencode(ctx context.Context, l v1.Layer, dir string, c Compression) (*Layer, error) {
	want, err := l.DiffID()
	if err != nil {
		return nil, err
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, fmt.Errorf("re-encoding layer %s: %w", want, err)
	}
	defer rc.Close()
	out, err := writeLayer(ctx, rc, dir, c, want, nil)
	if err != nil {
		return nil, fmt.Errorf("re-encoding layer %s: %w", want, err)
	}
	return out, nil
}
