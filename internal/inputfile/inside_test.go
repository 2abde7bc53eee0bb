package inputfile_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratabuild/strata/internal/inputfile"
)

func TestInsideDir(t *testing.T) {
	ctx := t.TempDir()
	outside := t.TempDir()
	secret := filepath.Join(outside, "shadow")
	if err := os.WriteFile(secret, []byte("root:SECRET-HASH:19000::::::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(ctx, "strata.yaml"), []byte("from: scratch\n"), 0o644))
	must(os.Mkdir(filepath.Join(ctx, "sub"), 0o755))
	must(os.Symlink("../strata.yaml", filepath.Join(ctx, "sub", "in.yaml")))
	must(os.Symlink(secret, filepath.Join(ctx, "abs.yaml")))
	must(os.Symlink("../"+filepath.Base(outside)+"/shadow", filepath.Join(ctx, "rel.yaml")))
	must(os.Symlink(outside, filepath.Join(ctx, "linkdir")))
	// The context reached through a link of its own is still the context.
	ctxLink := filepath.Join(t.TempDir(), "ctx")
	must(os.Symlink(ctx, ctxLink))

	for _, tc := range []struct {
		path, dir string
		ok        bool
	}{
		{filepath.Join(ctx, "strata.yaml"), ctx, true},
		{filepath.Join(ctx, "sub", "in.yaml"), ctx, true},
		{filepath.Join(ctxLink, "strata.yaml"), ctx, true},
		{filepath.Join(ctx, "strata.yaml"), ctxLink, true},
		{filepath.Join(ctx, "abs.yaml"), ctx, false},
		{filepath.Join(ctx, "rel.yaml"), ctx, false},
		{filepath.Join(ctx, "linkdir", "shadow"), ctx, false},
		{filepath.Join(ctx, "..", filepath.Base(outside), "shadow"), ctx, false},
		{filepath.Join(ctx, "missing.yaml"), ctx, false},
	} {
		err := inputfile.InsideDir(tc.path, tc.dir)
		if (err == nil) != tc.ok {
			t.Errorf("InsideDir(%q, %q) = %v, want ok %v", tc.path, tc.dir, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("InsideDir(%q) error shows the file's content: %v", tc.path, err)
		}
	}
	err := inputfile.InsideDir(filepath.Join(ctx, "abs.yaml"), ctx)
	want := filepath.Join(ctx, "abs.yaml") + " resolves to " + secret + ", which is outside " + ctx
	if err == nil || err.Error() != want {
		t.Errorf("InsideDir(abs.yaml) = %v, want %q", err, want)
	}
}
