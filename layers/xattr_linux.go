package layers

import (
	"sort"

	"github.com/stratabuild/strata/internal/rootfs"
)

const (
	overlayXattrPrefix = "trusted.overlay."
	opaqueXattr        = "trusted.overlay.opaque"
)

func isOpaque(path string) (bool, error) {
	v, err := rootfs.Xattr(path, opaqueXattr)
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
