package imagediff

import (
	"archive/tar"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// base is the layer every case of TestDiffLayerChanges changes.
func base() []ent {
	return []ent{
		dir("etc"),
		file("etc/app.conf", "port=1\n"),
		file("etc/gone", "x"),
		dir("usr"),
		file("usr/tool", "#!/bin/sh\n").with(func(h *tar.Header) { h.Mode = 0o755 }),
		symlink("usr/sh", "busybox"),
		file("usr/busybox", "bb"),
		{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "usr/ls", Linkname: "usr/busybox", ModTime: epoch}},
		{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "null", Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: epoch}},
		file("caps", "c").with(func(h *tar.Header) {
			h.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": "\x01\x00", "SCHILY.xattr.user.old": "o"}
		}),
	}
}

// edit returns base() with the entry named name replaced by f(entry), or
// removed when f returns nil.
func edit(name string, f func(e ent) *ent) []ent {
	var out []ent
	for _, e := range base() {
		if e.hdr.Name != name {
			out = append(out, e)
			continue
		}
		if ne := f(e); ne != nil {
			out = append(out, *ne)
		}
	}
	return out
}

func header(name string, f func(h *tar.Header)) []ent {
	return edit(name, func(e ent) *ent { e = e.with(f); return &e })
}

func TestDiffLayerChanges(t *testing.T) {
	later := epoch.Add(90 * time.Second)
	tests := []struct {
		name string
		a    []ent // nil: base()
		b    []ent
		want []PathChange
	}{
		{"content", nil, edit("etc/app.conf", func(e ent) *ent { e.body = "port=2\n"; return &e }),
			[]PathChange{{Path: "/etc/app.conf", Kind: Changed, Type: TypeFile, Attrs: []AttrChange{
				{Attr: "content", A: sum("port=1\n"), B: sum("port=2\n")},
			}}}},
		{"content and size", nil, edit("etc/app.conf", func(e ent) *ent { e.body = "port=10\n"; e.hdr.Size = 8; return &e }),
			[]PathChange{{Path: "/etc/app.conf", Kind: Changed, Type: TypeFile, Attrs: []AttrChange{
				{Attr: "content", A: sum("port=1\n"), B: sum("port=10\n")},
				{Attr: "size", A: "7", B: "8"},
			}}}},
		{"mode", nil, header("usr/tool", func(h *tar.Header) { h.Mode = 0o750 }),
			[]PathChange{{Path: "/usr/tool", Kind: Changed, Type: TypeFile, Attrs: []AttrChange{{Attr: "mode", A: "0755", B: "0750"}}}}},
		{"owner", nil, header("usr/tool", func(h *tar.Header) { h.Uid, h.Gid = 1000, 100 }),
			[]PathChange{{Path: "/usr/tool", Kind: Changed, Type: TypeFile, Attrs: []AttrChange{{Attr: "owner", A: "0:0", B: "1000:100"}}}}},
		{"owner names", nil, header("usr/tool", func(h *tar.Header) { h.Uname, h.Gname = "root", "wheel" }),
			[]PathChange{{Path: "/usr/tool", Kind: Changed, Type: TypeFile, Attrs: []AttrChange{
				{Attr: "uname", A: "", B: "root"}, {Attr: "gname", A: "", B: "wheel"}}}}},
		{"mtime", nil, header("etc/", func(h *tar.Header) { h.ModTime = later.Add(5 * time.Millisecond) }),
			[]PathChange{{Path: "/etc", Kind: Changed, Type: TypeDir, Attrs: []AttrChange{
				{Attr: "mtime", A: "2024-01-01T00:00:00Z", B: "2024-01-01T00:01:30.005Z"}}}}},
		{"xattrs", nil, header("caps", func(h *tar.Header) {
			h.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": "\x01\x02", "SCHILY.xattr.user.new": "n"}
		}),
			[]PathChange{{Path: "/caps", Kind: Changed, Type: TypeFile, Attrs: []AttrChange{
				{Attr: "xattr", Name: "security.capability", A: `"\x01\x00"`, B: `"\x01\x02"`},
				{Attr: "xattr", Name: "user.new", B: `"n"`},
				{Attr: "xattr", Name: "user.old", A: `"o"`},
			}}}},
		{"symlink target", nil, header("usr/sh", func(h *tar.Header) { h.Linkname = "../bin/busybox" }),
			[]PathChange{{Path: "/usr/sh", Kind: Changed, Type: TypeSymlink, Attrs: []AttrChange{{Attr: "link", A: "busybox", B: "../bin/busybox"}}}}},
		{"hardlink target", nil, header("usr/ls", func(h *tar.Header) { h.Linkname = "./usr/tool" }),
			[]PathChange{{Path: "/usr/ls", Kind: Changed, Type: TypeHardlink, Attrs: []AttrChange{{Attr: "link", A: "/usr/busybox", B: "/usr/tool"}}}}},
		{"device", nil, header("null", func(h *tar.Header) { h.Devminor = 5 }),
			[]PathChange{{Path: "/null", Kind: Changed, Type: TypeChar, Attrs: []AttrChange{{Attr: "device", A: "1:3", B: "1:5"}}}}},
		{"type", nil, edit("etc/gone", func(e ent) *ent { d := dir("etc/gone"); return &d }),
			[]PathChange{{Path: "/etc/gone", Kind: Changed, Type: TypeDir, Attrs: []AttrChange{
				{Attr: "type", A: TypeFile, B: TypeDir}, {Attr: "size", A: "1", B: "0"}, {Attr: "mode", A: "0644", B: "0755"}}}}},
		{"added", nil, append(base(), file("var/log/apt/history.log", "Start-Date: now\n")),
			[]PathChange{{Path: "/var/log/apt/history.log", Kind: Added, Type: TypeFile}}},
		{"added symlink", nil, append(base(), symlink("usr/vi", "busybox")),
			[]PathChange{{Path: "/usr/vi", Kind: Added, Type: TypeSymlink, Link: "busybox"}}},
		{"removed", nil, edit("etc/gone", func(ent) *ent { return nil }),
			[]PathChange{{Path: "/etc/gone", Kind: Removed, Type: TypeFile}}},
		{"whiteout", nil, append(edit("etc/gone", func(ent) *ent { return nil }), file("etc/.wh.gone", "")),
			[]PathChange{
				{Path: "/etc/gone", Kind: Removed, Type: TypeFile},
				{Path: "/etc/gone", Kind: Added, Type: TypeWhiteout},
			}},
		{"opaque", nil, append(base(), file("usr/.wh..wh..opq", "")),
			[]PathChange{{Path: "/usr", Kind: Added, Type: TypeOpaque}}},
		// A whiteout is an entry like any other: its mtime is compared.
		{"whiteout mtime", append(base(), file("etc/.wh.old", "")),
			append(base(), file("etc/.wh.old", "").with(func(h *tar.Header) { h.ModTime = later })),
			[]PathChange{{Path: "/etc/old", Kind: Changed, Type: TypeWhiteout, Attrs: []AttrChange{
				{Attr: "mtime", A: "2024-01-01T00:00:00Z", B: "2024-01-01T00:01:30Z"}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.a
			if a == nil {
				a = base()
			}
			r := compare(t, imageOf(t, nil, layerOf(t, tarOf(t, a...), nil)), imageOf(t, nil, layerOf(t, tarOf(t, tt.b...), nil)))
			if r.Identical || len(r.Fields) != 0 {
				t.Fatalf("Identical = %v, Fields = %v; want only the layer to differ", r.Identical, r.Fields)
			}
			if len(r.Layers) != 1 || r.Layers[0].Status != LayerChanged {
				t.Fatalf("Layers = %+v, want one changed layer", r.Layers)
			}
			if diff := cmp.Diff(tt.want, r.Layers[0].Changes); diff != "" {
				t.Errorf("Changes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDiffEncodingOnly: layers whose entries are all equal but whose tars are
// not are reported as changed, with the reason.
func TestDiffEncodingOnly(t *testing.T) {
	reversed := base()
	for i, j := 0, len(reversed)-1; i < j; i, j = i+1, j-1 {
		reversed[i], reversed[j] = reversed[j], reversed[i]
	}
	dotted := header("etc/app.conf", func(h *tar.Header) { h.Name = "./etc/app.conf" })
	gnu := header("usr/tool", func(h *tar.Header) { h.Format = tar.FormatGNU })
	tests := []struct {
		name    string
		b       []ent
		changes []PathChange
		note    string
	}{
		{"order", reversed, nil, noteOrder},
		{"name", dotted, []PathChange{{Path: "/etc/app.conf", Kind: Changed, Type: TypeFile,
			Attrs: []AttrChange{{Attr: "name", A: "etc/app.conf", B: "./etc/app.conf"}}}}, ""},
		{"format", gnu, []PathChange{{Path: "/usr/tool", Kind: Changed, Type: TypeFile,
			Attrs: []AttrChange{{Attr: "format", A: "USTAR", B: "GNU"}}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := compare(t, imageOf(t, nil, layerOf(t, tarOf(t, base()...), nil)), imageOf(t, nil, layerOf(t, tarOf(t, tt.b...), nil)))
			l := r.Layers[0]
			if l.Status != LayerChanged || l.Note != tt.note {
				t.Errorf("layer status %q note %q, want changed with note %q", l.Status, l.Note, tt.note)
			}
			if diff := cmp.Diff(tt.changes, l.Changes); diff != "" {
				t.Errorf("Changes (-want +got):\n%s", diff)
			}
		})
	}
}

// sum is the content attribute of a file holding s.
func sum(s string) string { return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(s))) }
