//go:build !unix

package inputfile

// openFlags: no non-blocking open outside unix; the stat before it still
// refuses anything but a regular file.
const openFlags = 0
