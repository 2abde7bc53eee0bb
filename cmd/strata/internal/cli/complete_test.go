package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFlagCompletion asks cobra's hidden __complete command what a shell
// would offer.
func TestFlagCompletion(t *testing.T) {
	dir := t.TempDir()
	recipe := "stages:\n  - name: build\n    from: scratch\n    steps: []\n  - name: app\n    from: scratch\n    steps: []\n"
	if err := os.WriteFile(filepath.Join(dir, "strata.yaml"), []byte(recipe), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"build", "--progress", ""}, []string{"auto", "plain", "json"}},
		{[]string{"build", "--compression", ""}, []string{"gzip", "zstd"}},
		{[]string{"build", "--platform", "linux/a"}, []string{"linux/amd64", "linux/arm64", "linux/arm/v7"}},
		{[]string{"build", "--platform", "linux/amd64,linux/arm"}, []string{"linux/amd64,linux/arm64", "linux/amd64,linux/arm/v7"}},
		{[]string{"build", dir, "--target", ""}, []string{"build", "app"}},
	} {
		_, stdout, _ := run(t, nil, append([]string{"__complete"}, tc.args...)...)
		for _, w := range tc.want {
			if !strings.Contains(stdout, w+"\n") {
				t.Errorf("completing %q: %q lacks %s", tc.args, stdout, w)
			}
		}
	}
}
