package recipe

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratabuild/strata/internal/inputfile"
)

// loadSoon calls Load and fails the test if it has not returned within
// 5 s: opening a FIFO for reading blocks until a writer comes.
func loadSoon(t *testing.T, path string) error {
	t.Helper()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := Load(path)
		done <- err
	}()
	select {
	case err := <-done:
		t.Logf("Load(%q) returned in %s", path, time.Since(start).Round(time.Microsecond))
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("Load(%q) still blocked after 5 s", path)
		return nil
	}
}

func TestRecipeFIFORefusedAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.yaml")
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	// Should Load block, a writer coming and going lets it return.
	t.Cleanup(func() {
		if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	err := loadSoon(t, path)
	want := "recipe " + path + " is a named pipe (FIFO), not a regular file"
	if err == nil || err.Error() != want {
		t.Fatalf("Load(FIFO) error = %v, want %q", err, want)
	}
}

// TestRecipeDevZeroRefused loads /dev/zero in a child process limited to
// 512 MiB more address space than it starts with: reading it whole would
// die there of "out of memory" instead of taking the machine's.
func TestRecipeDevZeroRefused(t *testing.T) {
	if path := os.Getenv("STRATA_TEST_LOAD"); path != "" {
		limitAddressSpace(t, 512<<20)
		_, err := Load(path)
		fmt.Printf("error: %v\n", err)
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestRecipeDevZeroRefused$")
	cmd.Env = append(os.Environ(), "STRATA_TEST_LOAD=/dev/zero")
	cmd.WaitDelay = time.Second
	start := time.Now()
	timer := time.AfterFunc(10*time.Second, func() { _ = cmd.Process.Kill() })
	out, err := cmd.CombinedOutput()
	timer.Stop()
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("Load(/dev/zero) in a child: %v after %s\n%s", err, elapsed, lastLines(out, 5))
	}
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB
	t.Logf("Load(/dev/zero): %s, child max RSS %d KiB", elapsed.Round(time.Millisecond), rss)
	want := "error: recipe /dev/zero is a character device, not a regular file\n"
	if !strings.HasPrefix(string(out), want) {
		t.Errorf("Load(/dev/zero) printed %q, want %q", out, want)
	}
	if rss > 100<<10 {
		t.Errorf("Load(/dev/zero) child max RSS %d KiB, want under 100 MiB", rss)
	}
}

// limitAddressSpace caps this process's address space at extra bytes
// over its current size.
func limitAddressSpace(t *testing.T, extra uint64) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var kib uint64
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmSize:"); ok {
			fmt.Sscan(v, &kib)
		}
	}
	if kib == 0 {
		t.Fatal("no VmSize in /proc/self/status")
	}
	lim := &syscall.Rlimit{Cur: kib<<10 + extra, Max: kib<<10 + extra}
	if err := syscall.Setrlimit(syscall.RLIMIT_AS, lim); err != nil {
		t.Fatal(err)
	}
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestRecipeTooLargeRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.yaml")
	big := "from: scratch\nsteps:\n" + strings.Repeat("  - run: echo 0123456789012345678901234567890123456789\n", 30000)
	if err := os.WriteFile(path, []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	err := loadSoon(t, path)
	want := "recipe " + path + " is 1.6 MiB, over the limit of 1 MiB"
	if err == nil || err.Error() != want {
		t.Errorf("Load(1.6 MiB) error = %v, want %q", err, want)
	}
	if !errors.Is(err, inputfile.ErrTooLarge) {
		t.Errorf("Load(1.6 MiB) error %v is not inputfile.ErrTooLarge", err)
	}
}

// TestRecipeSymlinkToShadowRefused: a strata.yaml in the context that
// links outside it is refused by InsideDir (the CLI checks a recipe it
// finds in the context with it) without being opened, and nothing of its
// content is shown.
func TestRecipeSymlinkToShadowRefused(t *testing.T) {
	ctx, outside := t.TempDir(), t.TempDir()
	shadow := filepath.Join(outside, "shadow")
	if err := os.WriteFile(shadow, []byte("root:$y$j9T$SECRETHASH:19000:0:99999:7:::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(outside, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{shadow, fifo, "/etc/shadow"} {
		recipe := filepath.Join(ctx, "strata.yaml")
		os.Remove(recipe)
		if err := os.Symlink(target, recipe); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- inputfile.InsideDir(recipe, ctx) }()
		var err error
		select {
		case err = <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("InsideDir(link to %s) blocked: it opened the file", target)
		}
		want := recipe + " resolves to " + target + ", which is outside " + ctx
		if err == nil || err.Error() != want {
			t.Errorf("InsideDir(link to %s) = %v, want %q", target, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "SECRETHASH") {
			t.Errorf("InsideDir error shows the file's content: %v", err)
		}
	}
}

func TestInvalidUTF8HasPosition(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"latin-1 byte", "from: scratch\nsteps:\n  - run: echo \"caf\xe9\"\n",
			"strata.yaml:3:19: invalid UTF-8 (byte 0xe9): a recipe must be UTF-8 text"},
		{"after multibyte characters", "from: scratch\nsteps:\n  - run: echo été \xff\n",
			"strata.yaml:3:19: invalid UTF-8 (byte 0xff): a recipe must be UTF-8 text"},
		{"truncated sequence", "from: scratch\n# \xe2\x82\n",
			"strata.yaml:2:3: invalid UTF-8 (byte 0xe2): a recipe must be UTF-8 text"},
		{"CRLF lines", "from: scratch\r\nsteps:\r\n  - run: \xc0\xaf\r\n",
			"strata.yaml:3:10: invalid UTF-8 (byte 0xc0): a recipe must be UTF-8 text"},
		{"first byte", "\xfffrom: scratch\n",
			"strata.yaml:1:1: invalid UTF-8 (byte 0xff): a recipe must be UTF-8 text"},
		{"NUL", "from: scratch\nsteps:\n  - run: echo \x00\n",
			`strata.yaml:3:15: control character U+0000 is not allowed in YAML (in a double-quoted string, write it as \x00)`},
		{"escape", "from: scratch\nsteps: [{run: \"a\x1b[0m\"}]\n",
			`strata.yaml:2:17: control character U+001B is not allowed in YAML (in a double-quoted string, write it as \x1b)`},
		{"C1 control", "from: scratch\n# \u0090\n",
			`strata.yaml:2:3: control character U+0090 is not allowed in YAML (in a double-quoted string, write it as \x90)`},
		{"non-character", "from: scratch\n# \uffff\n",
			`strata.yaml:2:3: control character U+FFFF is not allowed in YAML (in a double-quoted string, write it as \uffff)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := parseErrs(t, tc.src)
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("Parse errors = %q, want [%q]", got, tc.want)
			}
		})
	}
	// What YAML allows stays allowed: a BOM, tabs in a value, NEL, emoji.
	mustParse(t, "\ufefffrom: scratch\nsteps:\n  - run: \"echo a\tb \u0085 \U0001F600\"\n")
}
