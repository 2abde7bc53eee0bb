package sandbox

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestStubs(t *testing.T) {
	rootfs := t.TempDir()
	for _, d := range []string{"etc", "usr/lib", "proc"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, dest := range map[string]string{
		"lib":             "usr/lib",                  // relative dir link
		"etc/resolv.conf": "/run/systemd/resolv.conf", // absolute, dangling
		"etc/escape":      "../../../../outside",      // clamped to the rootfs
	} {
		if err := os.Symlink(dest, filepath.Join(rootfs, link)); err != nil {
			t.Fatal(err)
		}
	}
	s, err := RecordStubs(rootfs, []string{"/proc", "/dev", "/etc/hosts", "/etc/resolv.conf", "/lib/cache/x", "/etc/escape/y", "/dev/shm"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"dev", "dev/shm", "etc/hosts", "outside", "outside/y", "run", "run/systemd", "run/systemd/resolv.conf", "usr/lib/cache", "usr/lib/cache/x"}
	if diff := cmp.Diff(want, slices.Sorted(slices.Values(s.Paths()))); diff != "" {
		t.Errorf("RecordStubs paths (-want +got):\n%s", diff)
	}

	// What a runtime does: create the stubs; the process writes in one.
	for _, d := range []string{"dev/shm", "usr/lib/cache/x", "run/systemd", "outside/y"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"etc/hosts", "run/systemd/resolv.conf"} {
		if err := os.WriteFile(filepath.Join(rootfs, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(rootfs, "outside/y/written"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Clean(); err != nil {
		t.Fatalf("Clean: %v", err)
	}
	var got []string
	err = filepath.WalkDir(rootfs, func(p string, _ os.DirEntry, err error) error {
		rel, _ := filepath.Rel(rootfs, p)
		got = append(got, rel)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	wantTree := []string{".", "etc", "etc/escape", "etc/resolv.conf", "lib", "outside", "outside/y", "outside/y/written", "proc", "usr", "usr/lib"}
	if diff := cmp.Diff(wantTree, got); diff != "" {
		t.Errorf("rootfs after Clean (-want +got):\n%s", diff)
	}
}
