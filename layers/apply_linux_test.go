package layers

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/containerd/containerd/v2/pkg/archive"
	clog "github.com/containerd/log"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/internal/rootfs"
)

// Apply extracts the uncompressed layer tar r onto dir as a plain
// directory tree, not an overlay lower: .wh.NAME removes NAME and
// .wh..wh..opq empties its dir of what was there before. Entries cannot
// write outside dir: ".." and absolute paths, symlinks and hardlinks all
// resolve inside it. A dir entry over an existing dir sets the dir's full
// metadata, so xattrs the entry lacks are removed, as an overlay would show
// it. Apply is the tests' reference, containerd's archive.Apply: the tests
// check the extractor Store.Unpack uses against it.
func Apply(ctx context.Context, dir string, r io.Reader) error {
	dirXattrs := map[string]map[string]bool{}
	trusted := map[string]map[string]string{}
	filter := func(hdr *tar.Header) (bool, error) {
		if hdr.Typeflag == tar.TypeDir {
			keep := map[string]bool{}
			for k := range hdr.PAXRecords {
				if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
					keep[name] = true
				}
			}
			dirXattrs[hdr.Name] = keep
		}
		for k, v := range hdr.PAXRecords {
			name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
			if !ok || !strings.HasPrefix(name, "trusted.") {
				continue
			}
			// archive.Apply refuses trusted.* (and logs it); set them
			// afterwards, but never overlay-private ones in a plain tree.
			delete(hdr.PAXRecords, k)
			if strings.HasPrefix(name, rootfulXattrs.prefix) {
				continue
			}
			if trusted[hdr.Name] == nil {
				trusted[hdr.Name] = map[string]string{}
			}
			trusted[hdr.Name][name] = v
		}
		return true, nil
	}
	if _, err := archive.Apply(quietArchive(ctx), dir, r, archive.WithFilter(filter)); err != nil {
		return fmt.Errorf("applying layer to %s: %w", dir, err)
	}
	if err := setTrustedXattrs(dir, trusted); err != nil {
		return fmt.Errorf("applying layer to %s: %w", dir, err)
	}
	for name, keep := range dirXattrs {
		if err := dropXattrs(dir, name, keep); err != nil {
			return fmt.Errorf("applying layer to %s: %w", dir, err)
		}
	}
	return nil
}

// dropXattrs removes the layer xattrs of dir/name that keep lacks.
func dropXattrs(dir, name string, keep map[string]bool) error {
	p, err := rootfs.ResolveParent(dir, name, rootfs.Clamp)
	if errors.Is(err, unix.ENOENT) {
		return nil // removed by a later entry
	}
	if err != nil {
		return err
	}
	have, err := rootfs.Xattrs(p, rootfs.LayerXattr)
	if err != nil {
		return err
	}
	for k := range have {
		if keep[k] {
			continue
		}
		if err := unix.Lremovexattr(p, k); err != nil && !errors.Is(err, unix.ENODATA) {
			return fmt.Errorf("removing xattr %s of %q: %w", k, name, err)
		}
	}
	return nil
}

// quietArchive makes containerd's archive package, which logs through
// logrus (to stderr by default), log nothing.
func quietArchive(ctx context.Context) context.Context {
	l := logrus.New()
	l.Out = io.Discard
	return clog.WithLogger(ctx, logrus.NewEntry(l))
}
