package rootfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestResolve(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "etc/app"), 0o755))
	must(os.Symlink("/etc", filepath.Join(root, "abs")))        // absolute: restarts at the root
	must(os.Symlink("../../../etc", filepath.Join(root, "up"))) // climbs past the root
	must(os.Symlink("app", filepath.Join(root, "etc/rel")))     // relative, inside
	must(os.Symlink("loop2", filepath.Join(root, "loop1")))     // a loop
	must(os.Symlink("loop1", filepath.Join(root, "loop2")))
	tests := []struct {
		p       string
		m       Mode
		want    string // relative to root
		missing []string
		err     error
	}{
		{p: "/etc/app", want: "etc/app"},
		{p: "abs/app", want: "etc/app"},
		{p: "up/app", want: "etc/app"},
		{p: "etc/rel", want: "etc/app"},
		{p: "/etc/app/new/deeper", want: "etc/app/new/deeper", missing: []string{"etc/app/new", "etc/app/new/deeper"}},
		{p: "../../x", want: "x", missing: []string{"x"}},
		{p: "abs/app", m: Confine, err: ErrEscapes},
		{p: "up/app", m: Confine, err: ErrEscapes},
		{p: "../x", m: Confine, err: ErrEscapes},
		{p: "etc/rel", m: Confine, want: "etc/app"},
	}
	for _, tt := range tests {
		host, missing, err := Missing(root, tt.p, tt.m)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("Missing(%q, %d) error = %v, want %v", tt.p, tt.m, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Missing(%q) = %v", tt.p, err)
			continue
		}
		if host != filepath.Join(root, tt.want) {
			t.Errorf("Missing(%q) = %s, want %s", tt.p, host, filepath.Join(root, tt.want))
		}
		var rel []string
		for _, m := range missing {
			r, _ := filepath.Rel(root, m)
			rel = append(rel, r)
		}
		if d := cmp.Diff(tt.missing, rel); d != "" {
			t.Errorf("missing of %q (-want +got):\n%s", tt.p, d)
		}
	}
	if _, err := Resolve(root, "loop1", Clamp); err == nil {
		t.Error("a symlink loop resolved")
	}
	if got, err := ResolveParent(root, "abs", Clamp); err != nil || got != filepath.Join(root, "abs") {
		t.Errorf("ResolveParent(abs) = %s, %v; want the link itself", got, err)
	}
}

func TestLayerXattr(t *testing.T) {
	for name, want := range map[string]bool{
		"user.note": true, "security.capability": true, "trusted.x": true,
		"trusted.overlay.opaque": false, "user.overlay.opaque": false, "security.selinux": false,
	} {
		if got := LayerXattr(name); got != want {
			t.Errorf("LayerXattr(%q) = %v", name, got)
		}
	}
}
