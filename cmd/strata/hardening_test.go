package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOutputIntoContextRefusedBeforeAnyStep: -o type=oci,dest=<the build
// context> is refused before anything runs, and the context is untouched.
func TestOutputIntoContextRefusedBeforeAnyStep(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: touch /ran\n", map[string]string{"precious.txt": "precious\n"})
	root := t.TempDir()
	r := strata(t, nil, "build", "--root", root, "--build-arg", busyboxBase(t), "-o", "type=oci,dest="+ctx, ctx)
	if r.code != 2 || !strings.Contains(r.stderr, "is not empty and is not an OCI layout") {
		t.Errorf("exit %d, want 2 and the reason:\n%s", r.code, r.stderr)
	}
	if data, err := os.ReadFile(filepath.Join(ctx, "precious.txt")); err != nil || string(data) != "precious\n" {
		t.Errorf("the context lost precious.txt: %v", err)
	}
	if _, err := os.Stat(filepath.Join(ctx, "strata.yaml")); err != nil {
		t.Errorf("the context lost its recipe: %v", err)
	}
	if strings.Contains(r.stderr, "touch /ran") {
		t.Errorf("a step ran before the output was checked:\n%s", r.stderr)
	}
}

// TestBadInputsRefusedAtOnce: a FIFO as recipe and /dev/zero as recipe or
// secret are refused at once, in bounded memory, exit 2.
func TestBadInputsRefusedAtOnce(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: \"true\"\n", map[string]string{})
	fifo := filepath.Join(t.TempDir(), "f.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"fifo recipe", []string{"validate", "-f", fifo}, "named pipe (FIFO)"},
		{"dev zero recipe", []string{"validate", "-f", "/dev/zero"}, "character device"},
		{"dev zero secret", []string{"build", "--root", t.TempDir(), "--secret", "id=s,src=/dev/zero", ctx}, "character device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := strata(t, nil, tc.args...)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %s", took)
			}
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, want 2 and %q:\n%s", r.code, tc.want, r.stderr)
			}
		})
	}
}

// TestFullDiskNamedAtCommit: a state root that fills up while a layer is
// committed gives "no space left on device", not a pipe error.
func TestFullDiskNamedAtCommit(t *testing.T) {
	requireBuildTools(t)
	root := t.TempDir()
	if err := syscall.Mount("tmpfs", root, "tmpfs", 0, "size=48m"); err != nil {
		t.Fatalf("mounting a small tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(root, syscall.MNT_DETACH) })
	// 30 MiB of random data fits in the upper dir; its compressed blob
	// (as big) does not fit beside it.
	ctx := writeRecipe(t, "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: head -c 31457280 /dev/urandom > /big\n", map[string]string{})
	r := strata(t, nil, "build", "--root", root, "--build-arg", busyboxBase(t), ctx)
	if r.code != 1 || !strings.Contains(r.stderr, "no space left on device") {
		t.Errorf("exit %d, want 1 naming the full disk:\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "closed pipe") {
		t.Errorf("the error blames a pipe:\n%s", r.stderr)
	}
}
