//go:build unix

package inputfile

import "syscall"

// openFlags make opening a FIFO or a device that slipped past the stat
// return at once instead of waiting for a writer.
const openFlags = syscall.O_NONBLOCK | syscall.O_CLOEXEC
