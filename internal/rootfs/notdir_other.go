//go:build !unix

package rootfs

func isNotDir(error) bool { return false }
