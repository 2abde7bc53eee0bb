package commit_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/testutil"
)

// imageWithConfig returns an image of the given layers whose config edit
// may rewrite (to lie about its diff_ids).
func imageWithConfig(t testing.TB, layers []*commit.Layer, edit func(cf *v1.ConfigFile)) v1.Image {
	t.Helper()
	adds := make([]mutate.Addendum, len(layers))
	for i, l := range layers {
		adds[i] = mutate.Addendum{Layer: l}
	}
	return imageOf(t, adds, edit)
}

// imageOf is imageWithConfig of layers as manifest entries adds say.
func imageOf(t testing.TB, adds []mutate.Addendum, edit func(cf *v1.ConfigFile)) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.Append(img, adds...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	edit(cf)
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// baseWithConfig writes imageWithConfig to an OCI layout and pulls it back
// as a base image, the way a build reads an oci-layout:// base.
func baseWithConfig(t testing.TB, layers []*commit.Layer, edit func(cf *v1.ConfigFile)) v1.Image {
	t.Helper()
	return layoutBase(t, imageWithConfig(t, layers, edit))
}

// layoutBase writes img to an OCI layout and pulls it back as a base.
func layoutBase(t testing.TB, img v1.Image) v1.Image {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "base"})); err != nil {
		t.Fatal(err)
	}
	base, err := pullRef(t, "oci-layout://"+dir+":base", commit.PullOptions{})
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	return base
}

// baseLayers is commit.BaseLayers, failing the test on error.
func baseLayers(t testing.TB, img v1.Image) []v1.Layer {
	t.Helper()
	ls, err := commit.BaseLayers(img)
	if err != nil {
		t.Fatalf("BaseLayers: %v", err)
	}
	return ls
}

func twoLayers(t testing.TB) []*commit.Layer {
	t.Helper()
	zst, err := commit.WriteLayer(t.Context(), bytes.NewReader(testTar(t, map[string]string{"b": "two"})), t.TempDir(), commit.Zstd)
	if err != nil {
		t.Fatal(err)
	}
	return []*commit.Layer{newLayer(t, map[string]string{"a": "one"}), zst}
}

// TestBaseDiffIDCountMismatchRefused: a base whose config lists one
// diff_id too few (or too many) for its layers is refused by VerifyImage,
// with both counts; an honest base passes.
func TestBaseDiffIDCountMismatchRefused(t *testing.T) {
	ls := twoLayers(t)
	for _, tc := range []struct {
		name string
		edit func(cf *v1.ConfigFile)
		want string // "": no error
	}{
		{"honest", func(*v1.ConfigFile) {}, ""},
		{"one too few", func(cf *v1.ConfigFile) { cf.RootFS.DiffIDs = cf.RootFS.DiffIDs[:1] },
			"lists 1 diff_ids for the 2 layers"},
		{"one too many", func(cf *v1.ConfigFile) { cf.RootFS.DiffIDs = append(cf.RootFS.DiffIDs, cf.RootFS.DiffIDs[0]) },
			"lists 3 diff_ids for the 2 layers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := baseWithConfig(t, ls, tc.edit)
			err := commit.VerifyImage(base)
			if _, berr := commit.BaseLayers(base); (berr == nil) != (err == nil) {
				t.Errorf("BaseLayers = %v, want VerifyImage's %v", berr, err)
			}
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("VerifyImage = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("VerifyImage = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestBaseDuplicateLayerClaimsRefused: a base whose manifest lists one
// blob twice, with two diff_ids or two media types, is refused by
// VerifyImage, read from an OCI layout or from a real registry (where each
// entry of a digest reports the first entry's claims, so no read of the
// layer would see the second); the same blob twice with the same claims
// passes.
func TestBaseDuplicateLayerClaimsRefused(t *testing.T) {
	a := newLayer(t, map[string]string{"a": "one"})
	other, _ := newLayer(t, map[string]string{"b": "two"}).DiffID()
	dg, _ := a.Digest()
	r := testutil.StartRegistry(t, testutil.RegistryOptions{})
	for _, tc := range []struct {
		name   string
		second types.MediaType // the second entry's, if not ""
		edit   func(cf *v1.ConfigFile)
		want   []string // what the error names; none: no error
	}{
		{"same claims", "", func(*v1.ConfigFile) {}, nil},
		{"two diff_ids", "", func(cf *v1.ConfigFile) { cf.RootFS.DiffIDs[1] = other },
			[]string{"lists layer " + dg.String() + " twice (layers 1 and 2)", other.String(), "corrupt or forged"}},
		{"two media types", types.DockerLayer, func(*v1.ConfigFile) {},
			[]string{"lists layer " + dg.String() + " twice", string(types.DockerLayer), string(types.OCILayer)}},
	} {
		img := imageOf(t, []mutate.Addendum{{Layer: a}, {Layer: a, MediaType: tc.second}}, tc.edit)
		sources := map[string]func(t *testing.T) v1.Image{
			"oci-layout": func(t *testing.T) v1.Image { return layoutBase(t, img) },
			"registry": func(t *testing.T) v1.Image {
				ref := fmt.Sprintf("%s/twice/%s:1", r.Addr, strings.ReplaceAll(tc.name, " ", "-"))
				if _, err := commit.Push(t.Context(), img, tagsOf(t, []string{ref}), commit.RegistryOptions{}); err != nil {
					t.Fatalf("Push: %v", err)
				}
				base, err := pullRef(t, ref, commit.PullOptions{})
				if err != nil {
					t.Fatalf("Pull: %v", err)
				}
				return base
			},
		}
		for source, pull := range sources {
			t.Run(source+"/"+tc.name, func(t *testing.T) {
				base := pull(t)
				err := commit.VerifyImage(base)
				if _, berr := commit.BaseLayers(base); (berr == nil) != (err == nil) {
					t.Errorf("BaseLayers = %v, want VerifyImage's %v", berr, err)
				}
				if len(tc.want) == 0 {
					if err != nil {
						t.Errorf("VerifyImage = %v, want nil", err)
					}
					return
				}
				if err == nil {
					t.Fatal("VerifyImage of a base listing one blob twice with two claims succeeded")
				}
				for _, want := range tc.want {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("VerifyImage error %q does not name %q", err, want)
					}
				}
			})
		}
	}
}

// TestBaseDiffIDMismatchRefused: a base whose config claims a wrong
// diff_id for a layer (gzip or zstd) is refused by SaveBlob, naming the
// layer and both diffIDs, and nothing is left in the blob dir; the honest
// layer beside it is saved. The base comes from an OCI layout (its layers
// through BaseLayers) or from a real registry (its layers as pulled: a
// registry's layers report the config's claims).
func TestBaseDiffIDMismatchRefused(t *testing.T) {
	ls := twoLayers(t)
	r := testutil.StartRegistry(t, testutil.RegistryOptions{})
	sources := map[string]func(t *testing.T, lying int, wrong v1.Hash) []v1.Layer{
		"oci-layout": func(t *testing.T, lying int, wrong v1.Hash) []v1.Layer {
			return baseLayers(t, baseWithConfig(t, ls, func(cf *v1.ConfigFile) { cf.RootFS.DiffIDs[lying] = wrong }))
		},
		"registry": func(t *testing.T, lying int, wrong v1.Hash) []v1.Layer {
			ref := fmt.Sprintf("%s/lies/layer%d:1", r.Addr, lying)
			img := imageWithConfig(t, ls, func(cf *v1.ConfigFile) { cf.RootFS.DiffIDs[lying] = wrong })
			if _, err := commit.Push(t.Context(), img, tagsOf(t, []string{ref}), commit.RegistryOptions{}); err != nil {
				t.Fatalf("Push: %v", err)
			}
			base, err := pullRef(t, ref, commit.PullOptions{})
			if err != nil {
				t.Fatalf("Pull: %v", err)
			}
			bls, err := base.Layers()
			if err != nil {
				t.Fatal(err)
			}
			return bls
		},
	}
	for name, layersOf := range sources {
		for lying := range ls {
			t.Run(name+"/"+string(mustMediaType(t, ls[lying])), func(t *testing.T) {
				wrong, _ := ls[1-lying].DiffID()
				bls := layersOf(t, lying, wrong)
				blobs := t.TempDir()
				_, err := commit.SaveBlob(t.Context(), bls[lying], blobs)
				dg, _ := ls[lying].Digest()
				real, _ := ls[lying].DiffID()
				if err == nil {
					t.Fatal("SaveBlob of a layer whose config lies about its diff_id succeeded")
				}
				for _, want := range []string{dg.String(), real.String(), wrong.String()} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("SaveBlob error %q does not name %s", err, want)
					}
				}
				if entries, _ := os.ReadDir(blobs); len(entries) != 0 {
					t.Errorf("blob dir after a refused layer holds %v, want nothing", entries)
				}
				if _, err := commit.SaveBlob(t.Context(), bls[1-lying], blobs); err != nil {
					t.Errorf("SaveBlob of the honest layer: %v", err)
				}
			})
		}
	}
}

// TestSavedBlobRecheckedForAnotherClaim: a blob saved by an honest base is
// not trusted for another base that claims another diff_id for it.
func TestSavedBlobRecheckedForAnotherClaim(t *testing.T) {
	ls := twoLayers(t)
	blobs := t.TempDir()
	honest := baseLayers(t, baseWithConfig(t, ls, func(*v1.ConfigFile) {}))
	if _, err := commit.SaveBlob(t.Context(), honest[0], blobs); err != nil {
		t.Fatalf("SaveBlob(honest): %v", err)
	}
	lying := baseLayers(t, baseWithConfig(t, ls, func(cf *v1.ConfigFile) { cf.RootFS.DiffIDs[0] = cf.RootFS.DiffIDs[1] }))
	if _, err := commit.SaveBlob(t.Context(), lying[0], blobs); err == nil || !strings.Contains(err.Error(), "claims") {
		t.Errorf("SaveBlob(same blob, another diff_id) = %v, want a diff_id mismatch", err)
	}
	if _, err := commit.SaveBlob(t.Context(), honest[0], blobs); err != nil {
		t.Errorf("SaveBlob(honest) again: %v", err)
	}
}

// TestSaveBlobMemoryFlat: saving and checking a 32 MiB layer allocates a
// small, fixed amount, not the layer.
func TestSaveBlobMemoryFlat(t *testing.T) {
	ls := baseLayers(t, baseWithConfig(t, []*commit.Layer{randomLayer(t, 32<<20)}, func(*v1.ConfigFile) {}))
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := commit.SaveBlob(t.Context(), ls[0], t.TempDir()); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("SaveBlob of a 32 MiB layer allocated %d bytes", alloc)
	if alloc > 4<<20 {
		t.Errorf("SaveBlob of a 32 MiB layer allocated %d bytes, want < 4 MiB", alloc)
	}
}

// randomLayer returns a gzip layer holding one file of n random bytes.
func randomLayer(t testing.TB, n int) *commit.Layer {
	t.Helper()
	data := make([]byte, n)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	return newLayer(t, map[string]string{"big": string(data)})
}

func mustMediaType(t testing.TB, l v1.Layer) types.MediaType {
	t.Helper()
	mt, err := l.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	return mt
}
