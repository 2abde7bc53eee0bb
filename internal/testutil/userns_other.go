//go:build !linux

package testutil

import (
	"testing"

	"github.com/stratabuild/strata/internal/userns"
)

// UserNSHostID is the host id of uid 0 in InUserNS's namespaces.
const UserNSHostID = 1_600_000_000

// SubIDMaps are the maps of a rootless build with subordinate ids.
var SubIDMaps userns.Maps

// OwnIDMaps are the maps of a rootless build with own ids only.
var OwnIDMaps userns.Maps

// InUserNS skips outside Linux: user namespaces are Linux's.
func InUserNS(t *testing.T, maps userns.Maps) bool {
	t.Helper()
	t.Skip("user namespaces need Linux")
	return false
}
