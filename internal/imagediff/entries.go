package imagediff

import (
	"archive/tar"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// Notes of a changed layer whose entries are all equal.
const (
	noteOrder    = "the same entries in a different order"
	noteEncoding = "the same entries; the tars differ in encoding only (header bytes, padding)"
)

// compareIndexes lists the entries that differ between two layers, sorted
// by path. When none does, note says how the tars can still differ.
func compareIndexes(a, b index) (changes []PathChange, note string) {
	keys := unionKeys(a, b)
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].path != keys[j].path {
			return keys[i].path < keys[j].path
		}
		return keys[i].marker < keys[j].marker
	})
	for _, k := range keys {
		ea, eb := a[k], b[k]
		switch {
		case eb == nil:
			changes = append(changes, PathChange{Path: k.path, Kind: Removed, Type: ea.typ, Link: ea.attrs().link})
		case ea == nil:
			changes = append(changes, PathChange{Path: k.path, Kind: Added, Type: eb.typ, Link: eb.attrs().link})
		default:
			if attrs := compareEntries(k, ea, eb); len(attrs) > 0 {
				changes = append(changes, PathChange{Path: k.path, Kind: Changed, Type: eb.typ, Attrs: attrs})
			}
		}
	}
	if len(changes) > 0 {
		return changes, ""
	}
	if !sameOrder(a, b) {
		return nil, noteOrder
	}
	return nil, noteEncoding
}

// sameOrder reports whether two indexes with the same keys list them in
// the same order.
func sameOrder(a, b index) bool {
	byOrder := func(x index) []entryKey {
		ks := make([]entryKey, 0, len(x))
		for k := range x {
			ks = append(ks, k)
		}
		sort.Slice(ks, func(i, j int) bool { return x[ks[i]].order < x[ks[j]].order })
		return ks
	}
	ka, kb := byOrder(a), byOrder(b)
	for i := range ka {
		if ka[i] != kb[i] {
			return false
		}
	}
	return true
}

// compareEntries lists the attributes of one entry that differ, in the
// order AttrChange documents.
func compareEntries(k entryKey, a, b *entry) []AttrChange {
	ra, rb := a.attrs(), b.attrs()
	var out []AttrChange
	add := func(attr, va, vb string) {
		if va != vb {
			out = append(out, AttrChange{Attr: attr, A: va, B: vb})
		}
	}
	add("type", a.typ, b.typ)
	if a.typ == TypeFile && b.typ == TypeFile {
		add("content", fmt.Sprintf("sha256:%x", a.sum), fmt.Sprintf("sha256:%x", b.sum))
	}
	add("size", strconv.FormatInt(a.size, 10), strconv.FormatInt(b.size, 10))
	add("mode", fmt.Sprintf("%04o", a.mode), fmt.Sprintf("%04o", b.mode))
	add("owner", fmt.Sprintf("%d:%d", a.uid, a.gid), fmt.Sprintf("%d:%d", b.uid, b.gid))
	add("uname", a.uname, b.uname)
	add("gname", a.gname, b.gname)
	add("mtime", timeText(a.mtime), timeText(b.mtime))
	add("atime", timeText(ra.atime), timeText(rb.atime))
	add("ctime", timeText(ra.ctime), timeText(rb.ctime))
	add("link", ra.link, rb.link)
	add("device", device(a), device(b))
	out = append(out, compareMaps("xattr", ra.xattrs, rb.xattrs)...)
	out = append(out, compareMaps("pax", ra.pax, rb.pax)...)
	if len(out) == 0 {
		// Only the encoding of the header is left.
		add("name", a.tarName(k), b.tarName(k))
		add("format", formatName(a.format), formatName(b.format))
	}
	return out
}

// compareMaps lists the names whose values differ, sorted; a side is ""
// when the name is absent there, else its Go-quoted value.
func compareMaps(attr string, a, b map[string]string) []AttrChange {
	sorted := unionKeys(a, b)
	sort.Strings(sorted)
	var out []AttrChange
	for _, k := range sorted {
		va, oka := a[k]
		vb, okb := b[k]
		if oka == okb && va == vb {
			continue
		}
		c := AttrChange{Attr: attr, Name: k}
		if oka {
			c.A = strconv.Quote(va)
		}
		if okb {
			c.B = strconv.Quote(vb)
		}
		out = append(out, c)
	}
	return out
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func device(e *entry) string {
	if e.typ != TypeChar && e.typ != TypeBlock {
		return ""
	}
	return fmt.Sprintf("%d:%d", e.attrs().devMajor, e.attrs().devMinor)
}

func formatName(f tar.Format) string {
	switch {
	case f&tar.FormatPAX != 0:
		return "PAX"
	case f&tar.FormatGNU != 0:
		return "GNU"
	case f&tar.FormatUSTAR != 0:
		return "USTAR"
	}
	return f.String()
}

// unionKeys lists the keys of a and b, each once, in no order.
func unionKeys[K comparable, V any](a, b map[K]V) []K {
	keys := make([]K, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	return keys
}
