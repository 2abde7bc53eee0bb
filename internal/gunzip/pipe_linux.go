package gunzip

import (
	"os"

	"golang.org/x/sys/unix"
)

// pipeSize is the pipe buffer pipe asks for: 1 MiB, the most an
// unprivileged process may ask for by default (fs.pipe-max-size). 4 MiB
// was slower on the Debian base, 256 KiB too. A user other than root has
// 64 MiB of pipe buffers by default (fs.pipe-user-pages-soft): past about
// 32 layers inflated at once by one user's processes, further pipes of
// that user get the kernel's smallest buffer (as the default 64 KiB ones
// did past about 512).
const pipeSize = 1 << 20

// widen asks for a pipe buffer of pipeSize for the pipe f is an end of,
// keeping the default if refused (over a user's pipe-user-pages limit).
// Through the raw fd: f.Fd would make f blocking.
func widen(f *os.File) {
	c, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = c.Control(func(fd uintptr) {
		_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize)
	})
}
