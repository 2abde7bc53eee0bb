package owner

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// zombie reports whether pid has ended but not been reaped yet (state Z
// or X in /proc/PID/stat): a killed build whose parent has not waited for
// it — an orphan, such as a rootless build's copy in its namespace, waits
// for pid 1, which in a container may never reap it. kill(pid, 0) still
// succeeds on it.
func zombie(pid int) bool {
	_, z, err := ProcStat(pid)
	return err == nil && z
}

// ProcStat reads /proc/PID/stat: the process's start time (in clock ticks
// since boot, which tells a pid reused apart) and whether it has ended
// but not been reaped (state Z or X).
func ProcStat(pid int) (start uint64, zombie bool, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false, err
	}
	// The command name, field 2, is in parentheses and may hold spaces
	// and parentheses: the fields that follow start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3, the state
	if len(f) < 20 {
		return 0, false, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(f))
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("/proc/%d/stat: start time: %w", pid, err)
	}
	return start, f[0] == "Z" || f[0] == "X", nil
}
