package inputfile_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratabuild/strata/internal/inputfile"
)

// readSoon calls Read and fails the test if it has not returned within
// 5 s (a blocked open of a FIFO would never return).
func readSoon(t *testing.T, path string, o inputfile.Options) ([]byte, error) {
	t.Helper()
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		data, err := inputfile.Read(path, o)
		done <- result{data, err}
	}()
	select {
	case r := <-done:
		t.Logf("Read(%q) returned in %s", path, time.Since(start))
		return r.data, r.err
	case <-time.After(5 * time.Second):
		t.Fatalf("Read(%q) still blocked after 5 s", path)
		return nil, nil
	}
}

func TestReadRegular(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.yaml")
	if err := os.WriteFile(path, []byte("from: scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, max := range []int64{14, 15, 1 << 20} {
		got, err := readSoon(t, path, inputfile.Options{Max: max, What: "recipe"})
		if err != nil || string(got) != "from: scratch\n" {
			t.Errorf("Read(Max: %d) = %q, %v; want the file", max, got, err)
		}
	}
	// Through a symbolic link: the user named it, it is followed.
	link := filepath.Join(t.TempDir(), "link.yaml")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if got, err := readSoon(t, link, inputfile.Options{Max: 100, What: "recipe"}); err != nil || string(got) != "from: scratch\n" {
		t.Errorf("Read(link) = %q, %v; want the file", got, err)
	}
}

func TestReadFIFORefusedAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.yaml")
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := readSoon(t, path, inputfile.Options{Max: 1 << 20, What: "recipe"})
	want := "recipe " + path + " is a named pipe (FIFO), not a regular file"
	if err == nil || err.Error() != want {
		t.Fatalf("Read(FIFO) error = %v, want %q", err, want)
	}
	if !errors.Is(err, inputfile.ErrNotRegular) {
		t.Errorf("Read(FIFO) error %v is not ErrNotRegular", err)
	}
	// A symbolic link to the FIFO is refused the same way.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if _, err := readSoon(t, link, inputfile.Options{Max: 10, What: "recipe"}); !errors.Is(err, inputfile.ErrNotRegular) {
		t.Errorf("Read(link to FIFO) error = %v, want ErrNotRegular", err)
	}
}

func TestReadDevices(t *testing.T) {
	for _, tc := range []struct{ path, what, want string }{
		{"/dev/zero", `secret "s" source`, `secret "s" source /dev/zero is a character device, not a regular file`},
		{"/dev/urandom", "recipe", "recipe /dev/urandom is a character device, not a regular file"},
		{"/dev/stdin", "recipe", ""}, // whatever it is here, it is not read
		{"/", "ignore file", "ignore file / is a directory, not a regular file"},
	} {
		_, err := readSoon(t, tc.path, inputfile.Options{Max: 1 << 20, What: tc.what})
		if err == nil {
			t.Errorf("Read(%q) succeeded, want an error", tc.path)
			continue
		}
		if tc.want != "" && err.Error() != tc.want {
			t.Errorf("Read(%q) error = %q, want %q", tc.path, err, tc.want)
		}
	}
}

func TestReadSocketRefused(t *testing.T) {
	dir, err := os.MkdirTemp("", "sock")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "s")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	_, err = readSoon(t, path, inputfile.Options{Max: 10, What: "recipe"})
	if want := "recipe " + path + " is a socket, not a regular file"; err == nil || err.Error() != want {
		t.Errorf("Read(socket) error = %v, want %q", err, want)
	}
}

func TestReadTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(path, make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := readSoon(t, path, inputfile.Options{Max: 1 << 20, What: "recipe"})
	want := "recipe " + path + " is 3 MiB, over the limit of 1 MiB"
	if err == nil || err.Error() != want {
		t.Errorf("Read(3 MiB, Max 1 MiB) error = %v, want %q", err, want)
	}
	if !errors.Is(err, inputfile.ErrTooLarge) {
		t.Errorf("error %v is not ErrTooLarge", err)
	}
	// One byte over.
	small := filepath.Join(t.TempDir(), "small")
	if err := os.WriteFile(small, []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = readSoon(t, small, inputfile.Options{Max: 4, What: "recipe"})
	if want := "recipe " + small + " is 5 bytes, over the limit of 4 bytes"; err == nil || err.Error() != want {
		t.Errorf("Read(5 bytes, Max 4) error = %v, want %q", err, want)
	}
}

// A file whose size says nothing of its content (as in /proc) is read up
// to the limit, never past it.
func TestReadProcBounded(t *testing.T) {
	if _, err := os.Stat("/proc/self/maps"); err != nil {
		t.Skip("no /proc here")
	}
	data, err := readSoon(t, "/proc/self/maps", inputfile.Options{Max: 1 << 20, What: "recipe"})
	if err != nil || len(data) == 0 {
		t.Errorf("Read(/proc/self/maps) = %d bytes, %v; want its content", len(data), err)
	}
	_, err = readSoon(t, "/proc/self/maps", inputfile.Options{Max: 64, What: "recipe"})
	if !errors.Is(err, inputfile.ErrTooLarge) || !strings.Contains(err.Error(), "is more than 64 bytes") {
		t.Errorf("Read(/proc/self/maps, Max 64) error = %v, want ErrTooLarge after 64 bytes", err)
	}
}

func TestReadMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.yaml")
	_, err := readSoon(t, path, inputfile.Options{Max: 10, What: "recipe"})
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "reading recipe: ") {
		t.Errorf("Read(missing) error = %v, want a not-exist error saying reading recipe", err)
	}
}
