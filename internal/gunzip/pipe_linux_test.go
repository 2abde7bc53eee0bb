package gunzip

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPipeWidened checks that pipe's buffer is pipeSize, as seen from
// either end, where the system allows that size.
func TestPipeWidened(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/fs/pipe-max-size")
	if err != nil {
		t.Skip(err)
	}
	if max, _ := strconv.Atoi(strings.TrimSpace(string(b))); max < pipeSize {
		t.Skipf("fs.pipe-max-size is %d", max)
	}
	r, w, err := pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for _, f := range []*os.File{r, w} {
		c, err := f.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var size int
		var serr error
		if err := c.Control(func(fd uintptr) { size, serr = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0) }); err != nil || serr != nil {
			t.Fatal(err, serr)
		}
		if size != pipeSize {
			t.Errorf("pipe buffer %d bytes, want %d", size, pipeSize)
		}
	}
}
