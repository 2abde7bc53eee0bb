package layers

import (
	"archive/tar"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/pkg/archive"
	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/internal/userns"
)

// unpacker checks each entry of a layer Store.Unpack extracts and turns
// whiteouts into what overlay reads in a lower dir.
type unpacker struct {
	b     *budget
	names overlayXattrs
	// maps are the id maps of a rootless build's namespace; nil as root,
	// where every id can be represented.
	maps *userns.Maps
	// trusted holds the trusted.* xattrs archive.Apply refuses to set,
	// by entry name, for setTrustedXattrs.
	trusted map[string]map[string]string
}

func newUnpacker(b *budget) (*unpacker, error) {
	u := &unpacker{b: b, names: ovl(), trusted: map[string]map[string]string{}}
	if u.names.rootless {
		m, err := userns.CurrentMaps()
		if err != nil {
			return nil, err
		}
		u.maps = &m
	}
	return u, nil
}

// filter checks an entry against the budget, refuses what cannot be
// unpacked faithfully, and sets aside the trusted.* xattrs.
func (u *unpacker) filter(hdr *tar.Header) (bool, error) {
	if err := u.b.add(hdr); err != nil {
		return false, err
	}
	if hdr.Typeflag == tar.TypeChar && hdr.Devmajor == 0 && hdr.Devminor == 0 {
		return false, fmt.Errorf("entry %q: a 0/0 char device would read as an overlay whiteout", hdr.Name)
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(name, rootfulXattrs.prefix), strings.HasPrefix(name, u.names.prefix):
			return false, fmt.Errorf("entry %q: refusing overlay-private xattr %s", hdr.Name, name)
		case !strings.HasPrefix(name, "trusted."):
		case u.names.rootless:
			return false, fmt.Errorf("entry %q: xattr %s cannot be kept by a rootless build, as only root can set trusted.* xattrs (build this image as root)", hdr.Name, name)
		default:
			if u.trusted[hdr.Name] == nil {
				u.trusted[hdr.Name] = map[string]string{}
			}
			u.trusted[hdr.Name][name] = v
			delete(hdr.PAXRecords, k) // archive.Apply would refuse it, and log
		}
	}
	if u.maps != nil && !strings.HasPrefix(path.Base(hdr.Name), whiteoutPrefix) {
		if err := userns.CheckOwner(*u.maps, path.Clean("/"+hdr.Name), uint32(hdr.Uid), uint32(hdr.Gid)); err != nil {
			return false, err
		}
	}
	return true, nil
}

// convertWhiteout makes .wh.NAME a 0/0 char device NAME and .wh..wh..opq
// the opaque xattr of its dir, with the xattr names of this process.
func (u *unpacker) convertWhiteout(hdr *tar.Header, p string) (bool, error) {
	if !u.names.rootless {
		return archive.OverlayConvertWhiteout(hdr, p)
	}
	base, dir := filepath.Base(p), filepath.Dir(p)
	if base == opaqueMarker {
		return false, unix.Lsetxattr(dir, u.names.opaque, []byte("y"), 0)
	}
	name, ok := strings.CutPrefix(base, whiteoutPrefix)
	if !ok {
		return true, nil
	}
	wh := filepath.Join(dir, name)
	if err := unix.Mknod(wh, unix.S_IFCHR, 0); err != nil {
		return false, err
	}
	// A whiteout's owner means nothing to overlay: keep the tar's when it
	// can be represented, as root does.
	if userns.CheckOwner(*u.maps, "", uint32(hdr.Uid), uint32(hdr.Gid)) == nil {
		return false, unix.Lchown(wh, hdr.Uid, hdr.Gid)
	}
	return false, nil
}
