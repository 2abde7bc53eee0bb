//go:build unix && !linux

package owner

// zombie cannot tell here: no process is taken as one.
func zombie(int) bool { return false }
