package layers

import (
	"sort"
	"sync"

	"github.com/stratabuild/strata/internal/rootfs"
	"github.com/stratabuild/strata/internal/userns"
)

// overlayXattrs are the names overlay gives its private xattrs in the
// mounts of this process.
type overlayXattrs struct {
	prefix    string // of every overlay-private xattr
	opaque    string // marks an opaque dir
	userxattr bool   // mount with the userxattr option
	// redirectDir is the redirect_dir option that makes overlay create no
	// redirects: off, or nofollow with userxattr (which refuses off).
	redirectDir string
	rootless    bool
}

var (
	// rootfulXattrs: as root, overlay uses trusted.overlay.*.
	rootfulXattrs = overlayXattrs{prefix: "trusted.overlay.", opaque: "trusted.overlay.opaque", redirectDir: "off"}
	// rootlessXattrs: in a user namespace trusted.* cannot be set, and
	// overlay mounted with userxattr uses user.overlay.* instead.
	rootlessXattrs = overlayXattrs{prefix: "user.overlay.", opaque: "user.overlay.opaque", userxattr: true,
		redirectDir: "nofollow", rootless: true}
)

// ovl returns the overlay xattr names of this process: the rootless ones
// when it runs in a user namespace (a rootless build).
var ovl = sync.OnceValue(func() overlayXattrs {
	if userns.Inside() {
		return rootlessXattrs
	}
	return rootfulXattrs
})

func isOpaque(path string) (bool, error) {
	v, err := rootfs.Xattr(path, ovl().opaque)
	return string(v) == "y", err
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
