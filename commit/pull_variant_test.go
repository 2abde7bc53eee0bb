package commit_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/testutil"
)

// TestArmWithoutVariantIsV7: linux/arm/v7 (what linux/arm means) takes an
// index's arm image that names no variant, as containerd takes it.
func TestArmWithoutVariantIsV7(t *testing.T) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range []string{"amd64", "arm"} {
		img, err := mutate.ConfigFile(mutate.MediaType(empty.Image, types.OCIManifestSchema1), &v1.ConfigFile{OS: "linux", Architecture: arch, RootFS: v1.RootFS{Type: "layers"}})
		if err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: mutate.ConfigMediaType(img, types.OCIConfigJSON), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	dir := t.TempDir()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "latest"})); err != nil {
		t.Fatal(err)
	}
	img, err := commit.Pull(t.Context(), source(t, "oci-layout://"+dir+":latest"), commit.PullOptions{Platform: &v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil || cf.Architecture != "arm" {
		t.Errorf("pulled %v, %v; want the arm image", cf, err)
	}
}

// markedIndex is an index of one image per platform ("linux/amd64/v3"),
// each config's env naming its platform: WHICH=linux/amd64/v3.
func markedIndex(t *testing.T, platforms ...string) v1.ImageIndex {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, s := range platforms {
		p, err := v1.ParsePlatform(s)
		if err != nil {
			t.Fatal(err)
		}
		img, err := mutate.ConfigFile(mutate.MediaType(empty.Image, types.OCIManifestSchema1), &v1.ConfigFile{
			OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, RootFS: v1.RootFS{Type: "layers"},
			Config: v1.Config{Env: []string{"WHICH=" + s}},
		})
		if err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: mutate.ConfigMediaType(img, types.OCIConfigJSON), Descriptor: v1.Descriptor{Platform: p}})
	}
	return idx
}

// TestPullChoosesPlatform: from an index, the entry of the platform asked
// is taken whatever the order of the entries (amd64 is amd64/v1), else
// the highest lower level, never a higher one; from a registry and a
// layout alike.
func TestPullChoosesPlatform(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{})
	for i, tc := range []struct {
		index []string
		asked string
		want  string // "" : none
	}{
		{[]string{"linux/amd64/v3", "linux/amd64"}, "linux/amd64", "linux/amd64"},
		{[]string{"linux/amd64/v3", "linux/amd64"}, "linux/amd64/v1", "linux/amd64"},
		{[]string{"linux/amd64/v3", "linux/amd64"}, "linux/amd64/v2", "linux/amd64"},
		{[]string{"linux/amd64/v3", "linux/amd64"}, "linux/amd64/v3", "linux/amd64/v3"},
		{[]string{"linux/amd64", "linux/amd64/v3"}, "linux/amd64/v4", "linux/amd64/v3"},
		{[]string{"linux/amd64/v1", "linux/amd64/v2"}, "linux/amd64/v2", "linux/amd64/v2"},
		{[]string{"linux/amd64/v3"}, "linux/amd64", ""},
		{[]string{"linux/amd64/v3"}, "linux/amd64/v2", ""},
		{[]string{"linux/arm/v6", "linux/arm64"}, "linux/arm/v7", "linux/arm/v6"},
		{[]string{"linux/arm/v7"}, "linux/arm/v6", ""},
		{[]string{"linux/arm64/v8"}, "linux/arm64", "linux/arm64/v8"},
		{[]string{"linux/arm64"}, "linux/arm64/v8", "linux/arm64"},
	} {
		t.Run(strings.Join(tc.index, ",")+" for "+tc.asked, func(t *testing.T) {
			idx := markedIndex(t, tc.index...)
			dir := t.TempDir()
			lp, err := layout.Write(dir, empty.Index)
			if err != nil {
				t.Fatal(err)
			}
			if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "1"})); err != nil {
				t.Fatal(err)
			}
			tag, err := name.NewTag(fmt.Sprintf("%s/choose/app:%d", r.Addr, i))
			if err != nil {
				t.Fatal(err)
			}
			if err := remote.WriteIndex(tag, idx); err != nil {
				t.Fatal(err)
			}
			asked, err := v1.ParsePlatform(tc.asked)
			if err != nil {
				t.Fatal(err)
			}
			for _, ref := range []string{"oci-layout://" + dir + ":1", tag.String()} {
				img, err := commit.Pull(t.Context(), source(t, ref), commit.PullOptions{Platform: asked})
				got := ""
				if err == nil {
					cf, cerr := img.ConfigFile()
					if cerr != nil {
						t.Fatal(cerr)
					}
					got = strings.TrimPrefix(cf.Config.Env[0], "WHICH=")
				}
				if got != tc.want {
					t.Errorf("Pull(%s, %s) = %q (err %v), want %q", ref, tc.asked, got, err, tc.want)
				}
				if tc.want == "" && (err == nil || !strings.Contains(err.Error(), "no image for platform "+tc.asked)) {
					t.Errorf("Pull(%s, %s) error = %v, want no image for platform %s", ref, tc.asked, err, tc.asked)
				}
			}
		})
	}
}

// TestPullEntriesWithoutPlatform: an index entry that names no platform is
// taken as containerd (and docker's build) takes it: an image for the
// platform its config names, an index to look into (index → index →
// images); from a registry and a layout alike.
func TestPullEntriesWithoutPlatform(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{})
	unmarked := func(idx v1.ImageIndex) v1.ImageIndex { // its entries' platforms dropped
		out := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range im.Manifests {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			out = mutate.AppendManifests(out, mutate.IndexAddendum{Add: img})
		}
		return out
	}
	nested := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: markedIndex(t, "linux/arm64", "linux/amd64")})
	for i, tc := range []struct {
		name string
		idx  v1.ImageIndex
	}{
		{"images naming no platform", unmarked(markedIndex(t, "linux/arm64", "linux/amd64"))},
		{"an index in the index", nested},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			lp, err := layout.Write(dir, empty.Index)
			if err != nil {
				t.Fatal(err)
			}
			if err := lp.AppendIndex(tc.idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "1"})); err != nil {
				t.Fatal(err)
			}
			tag, err := name.NewTag(fmt.Sprintf("%s/noplat/app:%d", r.Addr, i))
			if err != nil {
				t.Fatal(err)
			}
			if err := remote.WriteIndex(tag, tc.idx); err != nil {
				t.Fatal(err)
			}
			for _, ref := range []string{"oci-layout://" + dir + ":1", tag.String()} {
				for _, want := range []string{"linux/amd64", "linux/arm64"} {
					p, _ := v1.ParsePlatform(want)
					img, err := commit.Pull(t.Context(), source(t, ref), commit.PullOptions{Platform: p})
					if err != nil {
						t.Errorf("Pull(%s, %s): %v", ref, want, err)
						continue
					}
					if cf, err := img.ConfigFile(); err != nil || cf.Config.Env[0] != "WHICH="+want {
						t.Errorf("Pull(%s, %s) = %v, %v; want the %s image", ref, want, cf, err, want)
					}
				}
				if _, err := commit.Pull(t.Context(), source(t, ref), commit.PullOptions{Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}}); err == nil ||
					!strings.Contains(err.Error(), "no image for platform linux/s390x") {
					t.Errorf("Pull(%s, linux/s390x) = %v, want no image for it", ref, err)
				}
			}
		})
	}
}
