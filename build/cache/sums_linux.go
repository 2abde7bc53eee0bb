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
		Dev: uint64(st.Dev), Ino: uint64(st.Ino), Size: st.Size, Mode: st.Mode,
		Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(), nlink: uint64(st.Nlink),
	}, true
}

// localFSTypes are the filesystems (statfs f_type) whose lstat Sums
// trusts: local, and keeping ctime as the kernel changes a file. Not NFS,
// SMB, 9p or FUSE (attributes cached or made up by a server), nor FAT
// (no ctime).
var localFSTypes = map[uint32]bool{
	0xEF53:     true, // ext2, ext3, ext4
	0x58465342: true, // xfs
	0x9123683E: true, // btrfs
	0x01021994: true, // tmpfs
	0x858458F6: true, // ramfs
	0x794C7630: true, // overlayfs
	0x2FC12FC1: true, // zfs
	0xF2F52010: true, // f2fs
	0xCA451A4E: true, // bcachefs
	0x52654973: true, // reiserfs
	0x3153464A: true, // jfs
}

// localFS reports whether the filesystem of dir is one of localFSTypes;
// false, with ok false, when statfs fails.
func localFS(dir string) (local, ok bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false, false
	}
	return localFSTypes[uint32(st.Type)], true
}
