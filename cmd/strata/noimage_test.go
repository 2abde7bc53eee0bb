package main_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/stratabuild/strata/internal/testutil"
)

// platformImage is an empty image whose config names p.
func platformImage(t *testing.T, p v1.Platform) v1.Image {
	t.Helper()
	img, err := mutate.ConfigFile(mutate.MediaType(empty.Image, types.OCIManifestSchema1),
		&v1.ConfigFile{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, RootFS: v1.RootFS{Type: "layers"}})
	if err != nil {
		t.Fatal(err)
	}
	return mutate.ConfigMediaType(img, types.OCIConfigJSON)
}

// TestBaseWithoutThePlatformIsMissing: a base that is there but holds no
// image for the build — an index without its platform, an image of
// another platform, a manifest that does not parse — is a base that does
// not exist, from a registry as from a layout: an error for validate
// (no "ok"), exit 2 for build.
func TestBaseWithoutThePlatformIsMissing(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range []string{"arm64", "s390x"} {
		p := v1.Platform{OS: "linux", Architecture: arch}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: platformImage(t, p), Descriptor: v1.Descriptor{Platform: &p}})
	}
	arm64 := platformImage(t, v1.Platform{OS: "linux", Architecture: "arm64"})
	push := func(ref string, write func(name.Tag) error) string {
		tag, err := name.NewTag(reg.Addr + ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := write(tag); err != nil {
			t.Fatal(err)
		}
		return tag.String()
	}
	indexRef := push("/noamd/app:1", func(tag name.Tag) error { return remote.WriteIndex(tag, idx) })
	arm64Ref := push("/arm64/app:1", func(tag name.Tag) error { return remote.Write(tag, arm64) })
	dir := t.TempDir()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "1"})); err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(arm64, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "arm64"})); err != nil {
		t.Fatal(err)
	}
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") {
			w.Header().Set("Content-Type", string(types.OCIManifestSchema1))
			_, _ = w.Write([]byte("<html>not a manifest</html>"))
			return
		}
		_, _ = w.Write([]byte("{}"))
	}))
	defer garbage.Close()

	for _, tc := range []struct {
		name, from string
		head       string // recipe lines before from:
		want       string
	}{
		{"registry index", indexRef, "", "no image for platform linux/amd64 (it has linux/arm64, linux/s390x)"},
		{"layout index", "oci-layout://" + dir + ":1", "", "no image for platform linux/amd64 (it has linux/arm64, linux/s390x)"},
		{"registry image", arm64Ref, "platforms: [linux/amd64]\n", "is a linux/arm64 image, not linux/amd64"},
		{"layout image", "oci-layout://" + dir + ":arm64", "platforms: [linux/amd64]\n", "is a linux/arm64 image, not linux/amd64"},
		{"garbage manifest", strings.TrimPrefix(garbage.URL, "http://") + "/garbage/app:1", "", "that is not an image's or an index's"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := writeRecipe(t, tc.head+"from: "+tc.from+"\nsteps:\n  - run: \"true\"\n", map[string]string{})
			for _, cmd := range []string{"validate", "build"} {
				args := []string{cmd}
				if cmd == "build" {
					args = append(args, "--root", t.TempDir())
				}
				r := strata(t, nil, append(args, ctx)...)
				if r.code != 2 || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "warning") || strings.Contains(r.stderr, ": ok") {
					t.Errorf("strata %s: exit %d, said:\n%s\nwant exit 2 and %q, no warning, no ok", cmd, r.code, r.stderr, tc.want)
				}
			}
		})
	}

	// A proxy's or captive portal's page answered for the manifest is the
	// network's state, not a missing base: a warning for validate, exit 1
	// for build, as for a registry out of reach.
	portal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte("<html>log in to the network</html>"))
			return
		}
		_, _ = w.Write([]byte("{}"))
	}))
	defer portal.Close()
	ctx := writeRecipe(t, "from: "+strings.TrimPrefix(portal.URL, "http://")+"/library/debian:bookworm\nsteps:\n  - run: \"true\"\n", map[string]string{})
	const said = "is it a registry, or a proxy's or login page in front of one?"
	if r := strata(t, nil, "validate", ctx); r.code != 0 || !strings.Contains(r.stderr+r.stdout, said) {
		t.Errorf("strata validate, a login page for the manifest: exit %d, said:\n%s%s\nwant exit 0 and a warning", r.code, r.stdout, r.stderr)
	}
	if r := strata(t, nil, "build", "--root", t.TempDir(), ctx); r.code != 1 || !strings.Contains(r.stderr, said) {
		t.Errorf("strata build, a login page for the manifest: exit %d, said:\n%s\nwant exit 1", r.code, r.stderr)
	}
}
