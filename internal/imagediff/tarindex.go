package imagediff

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"strings"
	"time"
)

// Whiteout names of the OCI image spec (and of aufs before it).
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// Marker kinds of an entryKey: an ordinary entry, a whiteout of the path,
// or the opaque marker of the directory.
const (
	markerNone uint8 = iota
	markerWhiteout
	markerOpaque
)

// entryKey identifies an entry of a layer: a whiteout of /x and an entry /x
// are two different entries, as are a directory and its opaque marker.
type entryKey struct {
	path   string
	marker uint8
}

// entry is what is kept of a tar entry: its metadata and a hash of its
// content, never the content.
type entry struct {
	order        int // position in the tar stream
	name         string
	typ          string
	mode         int64
	uid, gid     int
	uname, gname string
	size         int64
	mtime        time.Time
	atime, ctime time.Time
	link         string
	devMajor     int64
	devMinor     int64
	format       tar.Format
	xattrs       map[string]string
	pax          map[string]string
	sum          [sha256.Size]byte // content of a regular file
}

// index is the entries of one layer.
type index map[entryKey]*entry

// readIndex reads a layer's uncompressed tar stream once. It checks that
// the stream's SHA-256 is diffID ("sha256:…"), so what is compared is
// what the image claims.
func readIndex(ctx context.Context, r io.Reader, diffID string) (index, error) {
	whole := sha256.New()
	tr := tar.NewReader(io.TeeReader(&ctxReader{ctx: ctx, r: r}, whole))
	idx := index{}
	content := sha256.New()
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading tar entry %d: %w", n+1, err)
		}
		key, e := newEntry(hdr, n)
		if e.typ == TypeFile {
			if e.sum, err = hashContent(content, tr); err != nil {
				return nil, fmt.Errorf("reading %s: %w", key.path, err)
			}
		}
		idx[key] = e // a later entry of the same name wins, as on extraction
	}
	// The tar trailer and any padding after it are part of the diffID.
	if _, err := io.Copy(io.Discard, io.TeeReader(&ctxReader{ctx: ctx, r: r}, whole)); err != nil {
		return nil, fmt.Errorf("reading the end of the tar: %w", err)
	}
	if got := fmt.Sprintf("sha256:%x", whole.Sum(nil)); diffID != "" && got != diffID {
		return nil, fmt.Errorf("the layer's content is %s, not its diffID %s: the image is corrupt", got, diffID)
	}
	return idx, nil
}

func hashContent(h hash.Hash, r io.Reader) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	h.Reset()
	if _, err := io.Copy(h, r); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// newEntry turns a tar header into its key and entry.
func newEntry(hdr *tar.Header, order int) (entryKey, *entry) {
	key := entryKey{path: cleanPath(hdr.Name)}
	e := &entry{
		order: order, name: hdr.Name, typ: typeName(hdr.Typeflag),
		mode: hdr.Mode, uid: hdr.Uid, gid: hdr.Gid, uname: hdr.Uname, gname: hdr.Gname,
		size: hdr.Size, mtime: hdr.ModTime, atime: hdr.AccessTime, ctime: hdr.ChangeTime,
		link: hdr.Linkname, format: hdr.Format,
	}
	switch hdr.Typeflag {
	case tar.TypeLink:
		e.link = cleanPath(hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock:
		e.devMajor, e.devMinor = hdr.Devmajor, hdr.Devminor
	}
	dir, base := path.Split(key.path)
	switch {
	case base == opaqueMarker:
		key = entryKey{path: path.Clean(dir), marker: markerOpaque}
		e.typ = TypeOpaque
	case strings.HasPrefix(base, whiteoutPrefix):
		key = entryKey{path: path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix)), marker: markerWhiteout}
		e.typ = TypeWhiteout
	}
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if e.xattrs == nil {
				e.xattrs = map[string]string{}
			}
			e.xattrs[name] = v
		} else if !paxParsed[k] {
			if e.pax == nil {
				e.pax = map[string]string{}
			}
			e.pax[k] = v
		}
	}
	return key, e
}

// paxParsed are the PAX records archive/tar turns into Header fields,
// which are compared as such.
var paxParsed = map[string]bool{
	"path": true, "linkpath": true, "size": true, "uid": true, "gid": true,
	"uname": true, "gname": true, "mtime": true, "atime": true, "ctime": true,
	"GNU.sparse.major": true, "GNU.sparse.minor": true, "GNU.sparse.name": true,
	"GNU.sparse.realsize": true, "GNU.sparse.size": true, "GNU.sparse.numblocks": true,
	"GNU.sparse.offset": true, "GNU.sparse.numbytes": true, "GNU.sparse.map": true,
}

// cleanPath makes a tar name absolute and clean: "./etc/x/" → "/etc/x".
func cleanPath(name string) string {
	return path.Clean("/" + name)
}

func typeName(flag byte) string {
	switch flag {
	case tar.TypeReg, tar.TypeCont: // the reader turns the old '\x00' into TypeReg
		return TypeFile
	case tar.TypeDir:
		return TypeDir
	case tar.TypeSymlink:
		return TypeSymlink
	case tar.TypeLink:
		return TypeHardlink
	case tar.TypeChar:
		return TypeChar
	case tar.TypeBlock:
		return TypeBlock
	case tar.TypeFifo:
		return TypeFifo
	}
	return fmt.Sprintf("tar type %q", flag)
}

// ctxReader stops a long read when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
