package imagediff

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// textCase is a pair of images with one of each kind of difference.
func textCase(t *testing.T) *Result {
	t.Helper()
	bottom := layerOf(t, tarOf(t, base()...), nil)
	a := imageOf(t, nil, bottom, layerOf(t, tarOf(t,
		dir("etc"), file("etc/app.conf", "port=1\n"), file("usr/tool", "t").with(func(h *tar.Header) { h.Mode = 0o755 }),
		file("tmp/x", "x"),
	), nil))
	b := imageOf(t, func(c *v1.ConfigFile) {
		c.Created = v1.Time{Time: time.Date(2026, 12, 1, 9, 12, 44, 0, time.UTC)}
		c.History[1].CreatedBy = "strata strata.yaml:4 run: apt-get update && apt-get install -y tool"
	}, bottom, layerOf(t, tarOf(t,
		dir("etc"), file("etc/app.conf", "port=10\n"), file("usr/tool", "t").with(func(h *tar.Header) { h.Mode = 0o750 }),
		file("var/log/apt/history.log", "log"), file("etc/.wh.old", ""), dir("opt"), file("opt/.wh..wh..opq", ""),
		symlink("usr/sh", "busybox"),
	), nil))
	return compare(t, a, b)
}

func TestDiffWriteText(t *testing.T) {
	r := textCase(t)
	var buf bytes.Buffer
	if err := r.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	want := `created: 2024-01-01T00:00:00Z → 2026-12-01T09:12:44Z
history[1].created_by: "step 2" → "strata strata.yaml:4 run: apt-get update && apt-get install -y tool"
layer 0: same
layer 1 (` + short(r.Layers[1].A.DiffID) + ` → ` + short(r.Layers[1].B.DiffID) + `):
  ~ /etc/app.conf  content ` + short(sum("port=1\n")) + ` → ` + short(sum("port=10\n")) + `, size 7 → 8
  + deleted /etc/old
  + /opt/
  + opaque dir /opt
  - /tmp/x
  + /usr/sh -> busybox
  ~ /usr/tool  mode 0755 → 0750
  + /var/log/apt/history.log
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("WriteText (-want +got):\n%s", diff)
	}
}

func TestDiffWriteTextIdentical(t *testing.T) {
	img := imageOf(t, nil, layerOf(t, tarOf(t, base()...), nil))
	r := compare(t, img, img)
	var buf bytes.Buffer
	if err := r.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	if want := "identical: " + r.A.Digest + "\n"; buf.String() != want {
		t.Errorf("WriteText = %q, want %q", buf.String(), want)
	}
}

// TestDiffWriteJSON: the JSON is the Result, under the documented names.
func TestDiffWriteJSON(t *testing.T) {
	r := textCase(t)
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(*r, back); diff != "" {
		t.Errorf("JSON round trip (-want +got):\n%s", diff)
	}
	// What a script reads, by name.
	var doc struct {
		Identical bool `json:"identical"`
		Fields    []struct {
			Path string          `json:"path"`
			B    json.RawMessage `json:"b"`
		} `json:"fields"`
		Layers []struct {
			Status  string `json:"status"`
			Changes []struct {
				Path  string `json:"path"`
				Kind  string `json:"kind"`
				Attrs []struct {
					Attr, A, B string
				} `json:"attrs"`
			} `json:"changes"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Identical || doc.Fields[0].Path != "created" || string(doc.Fields[0].B) != `"2026-12-01T09:12:44Z"` {
		t.Errorf("JSON fields = %+v", doc.Fields)
	}
	c := doc.Layers[1].Changes[len(doc.Layers[1].Changes)-2]
	if doc.Layers[1].Status != "changed" || c.Path != "/usr/tool" || c.Kind != "changed" || c.Attrs[0].Attr != "mode" || c.Attrs[0].B != "0750" {
		t.Errorf("JSON layer 1 = %+v", doc.Layers[1])
	}
	if !strings.Contains(buf.String(), "update && apt-get") {
		t.Errorf("JSON escapes HTML characters:\n%s", buf.String())
	}
}

// TestDiffTextQuotesPaths: a path that would not read back from its line
// (a control character, invalid UTF-8, a trailing space) is Go-quoted;
// others are shown as they are.
func TestDiffTextQuotesPaths(t *testing.T) {
	for _, tc := range []struct {
		c    PathChange
		want string
	}{
		{PathChange{Path: "/etc/app.conf", Kind: Added, Type: TypeFile}, "  + /etc/app.conf\n"},
		{PathChange{Path: "/a b/c", Kind: Added, Type: TypeFile}, "  + /a b/c\n"},
		{PathChange{Path: "/x\n+ /etc/passwd", Kind: Added, Type: TypeFile}, `  + "/x\n+ /etc/passwd"` + "\n"},
		{PathChange{Path: "/esc\x1b[2Jx", Kind: Removed, Type: TypeFile}, `  - "/esc\x1b[2Jx"` + "\n"},
		{PathChange{Path: "/trailing ", Kind: Removed, Type: TypeFile}, `  - "/trailing "` + "\n"},
		{PathChange{Path: "/bad\xff", Kind: Added, Type: TypeFile}, `  + "/bad\xff"` + "\n"},
		{PathChange{Path: "/l", Kind: Added, Type: TypeSymlink, Link: "t\r"}, `  + /l -> "t\r"` + "\n"},
		{PathChange{Path: "/d\t", Kind: Added, Type: TypeWhiteout}, `  + deleted "/d\t"` + "\n"},
	} {
		var buf bytes.Buffer
		writeChange(&buf, tc.c)
		if got := buf.String(); got != tc.want {
			t.Errorf("writeChange(%q) = %q, want %q", tc.c.Path, got, tc.want)
		}
	}
}
