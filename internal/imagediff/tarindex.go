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
// content, never the content. What most entries lack is in rare, so that
// a layer of 100,000 entries stays within a few tens of MB.
type entry struct {
	order        int // position in the tar stream
	typ          string
	mode         int64
	uid, gid     int
	uname, gname string // interned
	size         int64
	mtime        time.Time
	format       tar.Format
	sum          [sha256.Size]byte // content of a regular file
	rare         *rareAttrs
}

// rareAttrs are the attributes of an entry that most entries lack.
type rareAttrs struct {
	name         string // the tar name, when not the canonical one
	link         string
	atime, ctime time.Time
	devMajor     int64
	devMinor     int64
	xattrs       map[string]string
	pax          map[string]string
}

var noRare rareAttrs

// attrs returns the entry's rare attributes, all zero when it has none.
func (e *entry) attrs() *rareAttrs {
	if e.rare == nil {
		return &noRare
	}
	return e.rare
}

// setRare returns the entry's rare attributes, making them if need be.
func (e *entry) setRare() *rareAttrs {
	if e.rare == nil {
		e.rare = &rareAttrs{}
	}
	return e.rare
}

// index is the entries of one layer.
type index map[entryKey]*entry

// indexer reads layers into indexes, reusing its buffers.
type indexer struct {
	content hash.Hash
	buf     []byte
	names   map[string]string // interned owner names
}

func newIndexer() *indexer {
	return &indexer{content: sha256.New(), buf: make([]byte, 64<<10), names: map[string]string{}}
}

// readIndex reads a layer's uncompressed tar stream once. It checks that
// the stream's SHA-256 is diffID ("sha256:…"), so what is compared is
// what the image claims.
func readIndex(ctx context.Context, r io.Reader, diffID string) (index, error) {
	return newIndexer().read(ctx, r, diffID)
}

func (x *indexer) read(ctx context.Context, r io.Reader, diffID string) (index, error) {
	whole := sha256.New()
	in := io.TeeReader(&ctxReader{ctx: ctx, r: r}, whole)
	tr := tar.NewReader(in)
	idx := index{}
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading tar entry %d: %w", n+1, err)
		}
		key, e := x.entry(hdr, n)
		if e.typ == TypeFile {
			if e.sum, err = x.hash(tr); err != nil {
				return nil, fmt.Errorf("reading %s: %w", key.path, err)
			}
		}
		idx[key] = e // a later entry of the same name wins, as on extraction
	}
	// The tar trailer and any padding after it are part of the diffID.
	if _, err := io.CopyBuffer(io.Discard, in, x.buf); err != nil {
		return nil, fmt.Errorf("reading the end of the tar: %w", err)
	}
	if err := diffIDMatches(whole, diffID); err != nil {
		return nil, err
	}
	return idx, nil
}

// checkDiffID reads a layer's uncompressed tar stream to its end and
// checks that its SHA-256 is diffID.
func checkDiffID(ctx context.Context, r io.Reader, diffID string) error {
	whole := sha256.New()
	if _, err := io.CopyBuffer(whole, &ctxReader{ctx: ctx, r: r}, make([]byte, 64<<10)); err != nil {
		return err
	}
	return diffIDMatches(whole, diffID)
}

// diffIDMatches checks that the SHA-256 whole has summed is diffID ("" is
// not checked).
func diffIDMatches(whole hash.Hash, diffID string) error {
	if got := fmt.Sprintf("sha256:%x", whole.Sum(nil)); diffID != "" && got != diffID {
		return fmt.Errorf("the layer's content is %s, not its diffID %s: the image is corrupt or forged", got, diffID)
	}
	return nil
}

// hash is the SHA-256 of what r holds.
func (x *indexer) hash(r io.Reader) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	x.content.Reset()
	if _, err := io.CopyBuffer(x.content, r, x.buf); err != nil {
		return sum, err
	}
	x.content.Sum(sum[:0])
	return sum, nil
}

func (x *indexer) intern(s string) string {
	if v, ok := x.names[s]; ok {
		return v
	}
	x.names[s] = s
	return s
}

// entry turns a tar header into its key and entry.
func (x *indexer) entry(hdr *tar.Header, order int) (entryKey, *entry) {
	key := entryKey{path: cleanPath(hdr.Name)}
	e := &entry{
		order: order, typ: typeName(hdr.Typeflag), mode: hdr.Mode, uid: hdr.Uid, gid: hdr.Gid,
		uname: x.intern(hdr.Uname), gname: x.intern(hdr.Gname),
		size: hdr.Size, mtime: hdr.ModTime, format: hdr.Format,
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
	if hdr.Name != canonicalName(key, e.typ) {
		e.setRare().name = hdr.Name
	}
	switch hdr.Typeflag {
	case tar.TypeLink:
		e.setRare().link = cleanPath(hdr.Linkname)
	case tar.TypeSymlink:
		e.setRare().link = hdr.Linkname
	case tar.TypeChar, tar.TypeBlock:
		r := e.setRare()
		r.devMajor, r.devMinor = hdr.Devmajor, hdr.Devminor
	}
	if !hdr.AccessTime.IsZero() || !hdr.ChangeTime.IsZero() {
		r := e.setRare()
		r.atime, r.ctime = hdr.AccessTime, hdr.ChangeTime
	}
	x.paxRecords(e, hdr.PAXRecords)
	return key, e
}

// paxRecords keeps the xattrs and the PAX records archive/tar does not
// turn into header fields.
func (x *indexer) paxRecords(e *entry, records map[string]string) {
	for k, v := range records {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			r := e.setRare()
			if r.xattrs == nil {
				r.xattrs = map[string]string{}
			}
			r.xattrs[name] = v
		} else if !paxParsed[k] {
			r := e.setRare()
			if r.pax == nil {
				r.pax = map[string]string{}
			}
			r.pax[k] = v
		}
	}
}

// canonicalName is the tar name of an entry as most writers spell it:
// relative, directories with a trailing slash ("etc/", "etc/app.conf",
// "etc/.wh.old", "etc/.wh..wh..opq").
func canonicalName(k entryKey, typ string) string {
	rel := strings.TrimPrefix(k.path, "/")
	switch k.marker {
	case markerWhiteout:
		dir, base := path.Split(rel)
		return dir + whiteoutPrefix + base
	case markerOpaque:
		if rel == "" {
			return opaqueMarker
		}
		return rel + "/" + opaqueMarker
	}
	if typ == TypeDir && rel != "" {
		return rel + "/"
	}
	return rel
}

// tarName is the entry's name in the tar.
func (e *entry) tarName(k entryKey) string {
	if e.rare != nil && e.rare.name != "" {
		return e.rare.name
	}
	return canonicalName(k, e.typ)
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
