package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratabuild/strata/build"
	"github.com/stratabuild/strata/build/cache"
)

func newPrune() *cobra.Command {
	var root string
	var keepBytes int64
	var keepDuration time.Duration
	cmd := &cobra.Command{
		Use:   "prune [--keep-bytes N] [--keep-duration D]",
		Short: "Remove unused cache entries, layer blobs and snapshots",
		Long: `Remove the build cache entries that --keep-bytes and --keep-duration do not
keep (least recently used first), then every layer blob and snapshot that
no kept entry uses, and the data of cache mounts (type: cache) unused for
--keep-duration or, least recently used first, past --keep-bytes. With
neither flag, only what no entry uses goes. The state dir must exist.
prune waits for running builds on the same --root to end and never removes
what one of them holds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keepBytes < 0 || keepDuration < 0 {
				return usageErr("--keep-bytes and --keep-duration must not be negative")
			}
			if root == "" {
				root = defaultRoot()
			}
			res, err := build.Prune(cmd.Context(), root, cache.PruneOptions{KeepBytes: keepBytes, KeepDuration: keepDuration})
			if err != nil {
				return &exitError{code: ExitBuildFailed, err: err}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "removed %d cache entries (kept %d), %d layer blobs (%d bytes), %d snapshots, the data of %d cache mounts (%d bytes)\n",
				res.EntriesRemoved, res.EntriesKept, res.BlobsRemoved, res.BytesFreed, res.SnapshotsRemoved, res.MountsRemoved, res.MountBytes)
			return nil
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "state `DIR` (env STRATA_ROOT; default "+defaultRoot()+")")
	cmd.Flags().Int64Var(&keepBytes, "keep-bytes", 0, "keep at most `N` bytes of cached layers, and N of cache-mount data (0: no limit)")
	cmd.Flags().DurationVar(&keepDuration, "keep-duration", 0, "drop entries unused for longer than `D`, such as 72h (0: no limit)")
	return cmd
}
