package layers

import (
	"context"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/pkg/archive"
)

// Apply extracts the uncompressed layer tar r onto dir as a plain
// directory tree, not an overlay lower: .wh.NAME removes NAME and
// .wh..wh..opq empties its dir of what was there before. Entries cannot
// write outside dir: ".." and absolute paths, symlinks and hardlinks all
// resolve inside it. It serves tests and tools; Store.Unpack makes the
// snapshots overlay mounts use.
func Apply(ctx context.Context, dir string, r io.Reader) error {
	if _, err := archive.Apply(ctx, dir, r); err != nil {
		return fmt.Errorf("applying layer to %s: %w", dir, err)
	}
	return nil
}
