package imagediff

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// digestOf is img's manifest digest.
func digestOf(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func TestCompareIndexes(t *testing.T) {
	amd := imageOf(t, nil, layerOf(t, tarOf(t, base()...), nil))
	arm := imageOf(t, func(c *v1.ConfigFile) { c.Architecture = "arm64" }, layerOf(t, tarOf(t, base()...), nil))
	arm2 := imageOf(t, func(c *v1.ConfigFile) { c.Architecture = "arm64" }, layerOf(t, tarOf(t, file("x", "2")), nil))
	index := func(digest string, images map[string]Image) Index {
		return Index{Ref: digest, Digest: digest, Images: images}
	}
	a, b := Image{Ref: "amd", Image: amd}, Image{Ref: "arm", Image: arm}
	for _, tc := range []struct {
		name      string
		a, b      Index
		identical bool
		text      string
	}{
		{"same digest", index("sha256:1", map[string]Image{"linux/amd64": a}), index("sha256:1", map[string]Image{"linux/amd64": a}), true, "identical: sha256:1\n"},
		{"same images, other index", index("sha256:1", map[string]Image{"linux/amd64": a}), index("sha256:2", map[string]Image{"linux/amd64": a}), false,
			"platform linux/amd64: identical: " + digestOf(t, amd) + "\nindex sha256:1 → sha256:2 (" + noteIndexEncoding + ")\n"},
		{"image for its platform", index("sha256:1", map[string]Image{"linux/amd64": a}), Index{Ref: "img", Images: map[string]Image{"linux/amd64": a}}, true,
			"platform linux/amd64: identical: " + digestOf(t, amd) + "\n"},
		{"platforms", index("sha256:1", map[string]Image{"linux/amd64": a, "linux/arm64": b}), index("sha256:2", map[string]Image{"linux/amd64": a}), false,
			"platforms only in A: linux/arm64\nplatform linux/amd64: identical: " + digestOf(t, amd) + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := CompareIndexes(t.Context(), tc.a, tc.b)
			if err != nil {
				t.Fatal(err)
			}
			if r.Identical != tc.identical {
				t.Errorf("Identical = %v, want %v", r.Identical, tc.identical)
			}
			var buf bytes.Buffer
			if err := r.WriteText(&buf); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.text, buf.String()); diff != "" {
				t.Errorf("WriteText (-want +got):\n%s", diff)
			}
		})
	}
	r, err := CompareIndexes(t.Context(), index("sha256:1", map[string]Image{"linux/arm64": b}), index("sha256:2", map[string]Image{"linux/arm64": {Ref: "arm2", Image: arm2}}))
	if err != nil {
		t.Fatal(err)
	}
	if r.Identical || len(r.Platforms) != 1 || r.Platforms[0].Result.Identical {
		t.Errorf("indexes whose arm64 images differ: %+v", r)
	}
}
