//go:build unix

package owner

import (
	"errors"
	"syscall"
)

// alive reports whether a process pid exists: kill(pid, 0) does not fail
// with ESRCH (another user's process counts), and it is not a zombie.
func alive(pid int) bool {
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) && !zombie(pid)
}
