//go:build !unix

package owner

// alive cannot tell here: every owner is taken as alive.
func alive(int) bool { return true }
