package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratabuild/strata/build/cache"
	"github.com/stratabuild/strata/build/tidy"
)

func newPrune() *cobra.Command {
	var root string
	var keepBytesFlag, keepDurationFlag string
	var all bool
	cmd := &cobra.Command{
		Use:   "prune [--keep-bytes N] [--keep-duration D] [--all]",
		Short: "Remove unused cache entries, layer blobs and snapshots",
		Long: `Remove the build cache entries that --keep-bytes and --keep-duration do not
keep (least recently used first), then every layer blob and snapshot that
no kept entry uses, and the data of cache mounts (type: cache) unused for
--keep-duration or, least recently used first, past --keep-bytes, and the
file digests remembered of build contexts not built for --keep-duration.
With neither flag, only what no entry uses goes; --keep-bytes 0 keeps no
entry and no cache-mount data. --all removes everything: every entry, blob,
snapshot (bases' too), cache mount's data and remembered digest, leaving
the state dir's empty layout, which rm -rf then removes (rootless, only
prune can remove the files that subordinate ids own). The state dir must
exist. prune waits for running builds on the same --root to end and never
removes what one of them holds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var keepBytes int64
			var keepDuration time.Duration
			var err error
			limitBytes := cmd.Flags().Changed("keep-bytes")
			if all && (limitBytes || cmd.Flags().Changed("keep-duration")) {
				return usageErr("--all removes everything: it takes neither --keep-bytes nor --keep-duration")
			}
			if limitBytes {
				if keepBytes, err = parseBytes(keepBytesFlag); err != nil {
					return usageErr("--keep-bytes: %v", err)
				}
			}
			if keepDurationFlag != "" {
				if keepDuration, err = parseDuration(keepDurationFlag); err != nil {
					return usageErr("--keep-duration: %v", err)
				}
			}
			if root == "" {
				root = defaultRoot()
			}
			res, err := tidy.Prune(cmd.Context(), root, cache.PruneOptions{
				KeepBytes: keepBytes, LimitBytes: limitBytes, KeepDuration: keepDuration, All: all,
			})
			if err != nil {
				return &exitError{code: ExitBuildFailed, err: err}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "removed %d cache entries (kept %d), %d layer blobs (%d bytes), %d snapshots, the data of %d cache mounts (%d bytes)\n",
				res.EntriesRemoved, res.EntriesKept, res.BlobsRemoved, res.BytesFreed, res.SnapshotsRemoved, res.MountsRemoved, res.MountBytes)
			return nil
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "state `DIR` (env STRATA_ROOT; default "+defaultRoot()+")")
	cmd.Flags().StringVar(&keepBytesFlag, "keep-bytes", "", "keep at most `SIZE` of cached layers, and as much cache-mount data, such as 10g; 0 keeps none (default: no limit)")
	cmd.Flags().BoolVar(&all, "all", false, "remove every cache entry, layer blob, snapshot and cache mount's data")
	cmd.Flags().StringVar(&keepDurationFlag, "keep-duration", "", "drop entries unused for longer than `DURATION`, such as 72h or 7d (default: no limit)")
	return cmd
}

// parseDuration parses a Go duration, or a number of days such as 7d.
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.ParseFloat(days, 64); err == nil && n >= 0 {
			return time.Duration(n * 24 * float64(time.Hour)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration %q: want a number with a unit h, m or s, or days such as 7d", s)
	}
	return d, nil
}
