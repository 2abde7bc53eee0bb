package owner

import (
	"bytes"
	"os"
	"strconv"
)

// zombie reports whether pid has ended but not been reaped yet (state Z
// or X in /proc/PID/stat): a killed build whose parent has not waited for
// it — an orphan, such as a rootless build's copy in its namespace, waits
// for pid 1, which in a container may never reap it. kill(pid, 0) still
// succeeds on it.
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')') // the command name may hold anything
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] == 'Z' || b[i+2] == 'X'
}
