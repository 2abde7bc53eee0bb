package cache

import (
	"io/fs"
	"syscall"
)

// sumOf is what fi, an lstat, says of a file for Sums; false when it does
// not say it.
func sumOf(fi fs.FileInfo) (sum, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return sum{}, false
	}
	return sum{
		Dev: st.Dev, Ino: st.Ino, Size: st.Size, Mode: st.Mode,
		Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(),
	}, true
}
