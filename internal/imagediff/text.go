package imagediff

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// WriteText writes r for a person: one line per field that differs
// ("created: 2024-01-01T00:00:00Z → 2026-12-01T09:12:44Z"), then one line
// per layer that is the same and a block per layer that differs, one
// line per entry: "+ PATH" added, "- PATH" removed, "~ PATH  what changed".
// Digests are shortened to 12 hex digits; WriteJSON gives them whole.
func (r *Result) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	if r.Identical {
		if r.ManifestCompared {
			fmt.Fprintf(bw, "identical: %s\n", r.A.Digest)
		} else {
			fmt.Fprintf(bw, "identical: the same config %s and layers (manifests not compared: a docker-archive has none)\n", short(r.A.ConfigDigest))
		}
		return bw.Flush()
	}
	for _, f := range r.Fields {
		fmt.Fprintf(bw, "%s: %s → %s", f.Path, fieldValue(f.A), fieldValue(f.B))
		if f.Note != "" {
			fmt.Fprintf(bw, " (%s)", f.Note)
		}
		fmt.Fprintln(bw)
	}
	for _, l := range r.Layers {
		writeLayer(bw, l)
	}
	return bw.Flush()
}

func writeLayer(w io.Writer, l Layer) {
	switch l.Status {
	case LayerSame:
		if l.A.Digest != "" && l.B.Digest != "" && l.A.Digest != l.B.Digest {
			fmt.Fprintf(w, "layer %d: same content, blob %s → %s (compressed differently)\n", l.Index, short(l.A.Digest), short(l.B.Digest))
			return
		}
		fmt.Fprintf(w, "layer %d: same\n", l.Index)
	case LayerAdded:
		fmt.Fprintf(w, "layer %d: only in B (%s)\n", l.Index, short(l.B.DiffID))
	case LayerRemoved:
		fmt.Fprintf(w, "layer %d: only in A (%s)\n", l.Index, short(l.A.DiffID))
	default:
		fmt.Fprintf(w, "layer %d (%s → %s):\n", l.Index, short(l.A.DiffID), short(l.B.DiffID))
		for _, c := range l.Changes {
			writeChange(w, c)
		}
		if l.Note != "" {
			fmt.Fprintf(w, "  %s\n", l.Note)
		}
	}
}

func writeChange(w io.Writer, c PathChange) {
	switch c.Kind {
	case Added:
		fmt.Fprintf(w, "  + %s\n", entryText(c, true))
	case Removed:
		fmt.Fprintf(w, "  - %s\n", entryText(c, true))
	default:
		attrs := make([]string, len(c.Attrs))
		for i, a := range c.Attrs {
			attrs[i] = attrText(a)
		}
		fmt.Fprintf(w, "  ~ %s  %s\n", entryText(c, false), strings.Join(attrs, ", "))
	}
}

// entryText names an entry: "deleted /x" for a whiteout, "opaque dir /x"
// for an opaque marker, "/x/" for a directory; with links, also the
// target of a link ("/x -> y", "/x => /y" for a hardlink).
func entryText(c PathChange, links bool) string {
	c.Path, c.Link = pathText(c.Path), pathText(c.Link)
	switch c.Type {
	case TypeWhiteout:
		return "deleted " + c.Path
	case TypeOpaque:
		return "opaque dir " + c.Path
	case TypeDir:
		if c.Path == "/" {
			return c.Path
		}
		return c.Path + "/"
	case TypeSymlink:
		if links {
			return c.Path + " -> " + c.Link
		}
	case TypeHardlink:
		if links {
			return c.Path + " => " + c.Link
		}
	case TypeFile:
	default:
		if links {
			return c.Path + " (" + c.Type + ")"
		}
	}
	return c.Path
}

// pathText shows a path as it is, or Go-quoted when it would not read
// back from the line: it holds a control character (a newline, an
// escape sequence) or invalid UTF-8, or ends in a space.
func pathText(p string) string {
	if !utf8.ValidString(p) || strings.IndexFunc(p, unicode.IsControl) >= 0 ||
		strings.TrimRightFunc(p, unicode.IsSpace) != p {
		return strconv.Quote(p)
	}
	return p
}

// longValue is the length past which an xattr or PAX value is not shown.
const longValue = 40

func attrText(a AttrChange) string {
	switch a.Attr {
	case "content":
		return fmt.Sprintf("content %s → %s", short(a.A), short(a.B))
	case "uname", "gname", "link":
		return fmt.Sprintf("%s %q → %q", a.Attr, a.A, a.B)
	case "name":
		return fmt.Sprintf("tar name %q → %q", a.A, a.B)
	case "format":
		return fmt.Sprintf("tar format %s → %s", a.A, a.B)
	case "xattr", "pax":
		switch {
		case a.A == "":
			return fmt.Sprintf("%s %s added", a.Attr, a.Name)
		case a.B == "":
			return fmt.Sprintf("%s %s removed", a.Attr, a.Name)
		case len(a.A) > longValue || len(a.B) > longValue:
			return fmt.Sprintf("%s %s changed", a.Attr, a.Name)
		}
		return fmt.Sprintf("%s %s %s → %s", a.Attr, a.Name, a.A, a.B)
	}
	return fmt.Sprintf("%s %s → %s", a.Attr, orNone(a.A), orNone(a.B))
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// plainToken is a JSON string shown without quotes: a time, a digest, an
// architecture.
var plainToken = regexp.MustCompile(`^[A-Za-z0-9._:/+@-]+$`)

// fieldValue shows a field's JSON value: "(none)" when absent, a plain
// token without quotes, anything else as compact JSON.
func fieldValue(v json.RawMessage) string {
	if len(v) == 0 {
		return "(none)"
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		if plainToken.MatchString(s) {
			return short(s)
		}
		return strconv.Quote(s)
	}
	return string(v)
}

var digestRe = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// short shortens a sha256 digest to 12 hex digits; other strings are
// returned as they are.
func short(s string) string {
	if digestRe.MatchString(s) {
		return s[:len("sha256:")+12] + "…"
	}
	return s
}
