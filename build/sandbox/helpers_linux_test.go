package sandbox

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stratabuild/strata/internal/testutil"
)

var (
	probeOnce sync.Once
	probeErr  error
)

// requireRunc skips (or fails under STRATA_REQUIRE_PRIVILEGED=1) unless a
// container really runs: root, runc installed, cgroups and namespaces usable.
func requireRunc(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t)
	probeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "strata-probe-")
		if err != nil {
			probeErr = err
			return
		}
		defer os.RemoveAll(dir)
		testutil.BusyboxRootfs(t, dir)
		probeErr = Run(t.Context(), Options{Rootfs: dir, Args: []string{"true"}})
	})
	testutil.Require(t, "runc", func() error { return probeErr }, "apt-get install -y runc; run the tests as root")
}

// busybox returns a fresh busybox rootfs in a temp dir.
func busybox(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rootfs")
	testutil.BusyboxRootfs(t, dir)
	return dir
}

// result is what a run produced.
type result struct {
	stdout, stderr string
	err            error
}

// run runs args in rootfs with o's other fields, capturing output.
func run(ctx context.Context, t testing.TB, o Options) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	o.Stdout, o.Stderr = &stdout, &stderr
	err := Run(ctx, o)
	return result{stdout.String(), stderr.String(), err}
}
