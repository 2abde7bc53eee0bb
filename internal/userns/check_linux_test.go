package userns

import (
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// setFile points *v at a temp file holding content for the test.
func setFile(t *testing.T, v *string, content string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	old := *v
	*v = p
	t.Cleanup(func() { *v = old })
}

func TestCheckSysctls(t *testing.T) {
	for _, c := range []struct {
		name string
		file *string
		want string
	}{
		{"max_user_namespaces", &maxUserNamespaces, "user namespaces are disabled for users other than root (sysctl user.max_user_namespaces = 0)"},
		{"unprivileged_userns_clone", &unprivUsernsClone, "user namespaces are disabled for users other than root (sysctl kernel.unprivileged_userns_clone = 0)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			setFile(t, &maxUserNamespaces, "15000\n")
			setFile(t, &unprivUsernsClone, "1\n")
			if err := checkSysctls(); err != nil {
				t.Fatalf("checkSysctls with user namespaces enabled = %v", err)
			}
			setFile(t, c.file, "0\n")
			_, err := Check()
			var pe *PrereqError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), c.want) || !strings.Contains(pe.Fix, "sysctl -w") {
				t.Errorf("Check = %v, want a *PrereqError saying %q and how to fix it", err, c.want)
			}
		})
	}
}

func TestCheckSubordinateIDs(t *testing.T) {
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	setFile(t, &maxUserNamespaces, "15000\n")
	setFile(t, &subUIDFile, u.Username+":100000:65536\n")
	setFile(t, &subGIDFile, u.Uid+":200000:1000\n")

	t.Run("ranges and helpers", func(t *testing.T) {
		bin := t.TempDir()
		for _, name := range []string{"newuidmap", "newgidmap"} {
			if err := os.WriteFile(filepath.Join(bin, name), nil, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		t.Setenv("PATH", bin)
		if _, err := Check(); err == nil || !strings.Contains(err.Error(), "newuidmap is neither setuid root nor given the capability") {
			t.Errorf("Check with a newuidmap that is not setuid = %v", err)
		}
		t.Setenv("PATH", t.TempDir())
		_, err := Check()
		var pe *PrereqError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "newuidmap is not installed") || !strings.Contains(pe.Fix, "apt-get install uidmap") {
			t.Errorf("Check without newuidmap = %v", err)
		}
	})
	t.Run("no subordinate gids", func(t *testing.T) {
		setFile(t, &subGIDFile, "someone-else:200000:1000\n")
		t.Setenv("PATH", t.TempDir()) // no helper needed with own ids only
		p, err := Check()
		if err != nil {
			t.Fatal(err)
		}
		if !p.Maps.OwnIDOnly() || p.newuidmap != "" {
			t.Errorf("Check mapped %v / %v with helper %q, want own ids only", p.Maps.UIDs, p.Maps.GIDs, p.newuidmap)
		}
		want := u.Username + " has no subordinate gids in " + subGIDFile + ": only your own ids are mapped"
		if !strings.Contains(p.Warning, want) || !strings.Contains(p.Warning, "usermod --add-subuids") {
			t.Errorf("Warning = %q, want it to say %q and how to fix it", p.Warning, want)
		}
	})
}
