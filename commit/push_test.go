package commit_test

import (
	"encoding/json"
	"net/url"
	"path/filepath"
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

// skopeoDigest asks skopeo for the manifest digest of ref in r, trusting
// r's CA from its cert dir and authenticating with args.
func skopeoDigest(t testing.TB, r *testutil.Registry, ref string, auth ...string) string {
	t.Helper()
	args := append([]string{"inspect", "--cert-dir", r.CertDir}, auth...)
	out := run(t, nil, "skopeo", append(args, "docker://"+ref)...)
	var inspect struct{ Digest string }
	if err := json.Unmarshal([]byte(out), &inspect); err != nil {
		t.Fatalf("skopeo inspect output: %v\n%s", err, out)
	}
	return inspect.Digest
}

// blobUploads counts blob uploads the registry started in repo (POST
// /v2/REPO/blobs/uploads/, mounts included) and the chunks it received
// (PATCH).
func blobUploads(t testing.TB, r *testutil.Registry, repo string) (posts, patches int) {
	t.Helper()
	p := "/v2/" + repo + "/blobs/uploads/"
	return r.Requests(t, "POST", p), r.Requests(t, "PATCH", p)
}

// TestPush pushes to a real distribution registry over TLS with htpasswd
// auth. Credentials come from a temp DOCKER_CONFIG through
// authn.DefaultKeychain; the registry's CA is trusted through
// PushOptions.Transport.
func TestPush(t *testing.T) {
	requireTool(t, "skopeo", "skopeo")
	r := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true, Auth: true})
	t.Setenv("DOCKER_CONFIG", r.DockerConfig)
	opts := commit.RegistryOptions{Transport: r.Transport()}
	img := motdImage(t, "pushed\n")
	want := digestOf(t, img)
	tags := []string{r.Addr + "/strata/app:v1", r.Addr + "/strata/app:latest"}

	got, err := commit.Push(t.Context(), img, tagsOf(t, tags), opts)
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	if got != want {
		t.Errorf("Push digest = %v, want the image's %v", got, want)
	}
	if d := skopeoDigest(t, r, tags[0], "--authfile", filepath.Join(r.DockerConfig, "config.json")); d != want.String() {
		t.Errorf("skopeo inspect %s digest = %s, want %s", tags[0], d, want)
	}
	if d := skopeoDigest(t, r, tags[1], "--creds", r.User+":"+r.Password); d != want.String() {
		t.Errorf("skopeo inspect %s digest = %s, want %s", tags[1], d, want)
	}
	posts, patches := blobUploads(t, r, "strata/app")
	if posts != 3 || patches != 3 {
		// busybox layer, the new layer, the config.
		t.Errorf("first push started %d uploads with %d chunks, want 3 and 3", posts, patches)
	}

	// Pull reads it back through the same credentials and CA.
	pulled, err := pullRef(t, tags[0], commit.PullOptions{RegistryOptions: commit.RegistryOptions{Transport: r.Transport()}})
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if d := digestOf(t, pulled); d != want {
		t.Errorf("Pull digest = %v, want %v", d, want)
	}

	// A second push of the same image uploads no blob, only manifests.
	manifestsBefore := r.Requests(t, "PUT", "/manifests/")
	if _, err := commit.Push(t.Context(), img, tagsOf(t, tags), opts); err != nil {
		t.Fatalf("second Push: %v", err)
	}
	if p2, c2 := blobUploads(t, r, "strata/app"); p2 != posts || c2 != patches {
		t.Errorf("second push started %d uploads and %d chunks, want none", p2-posts, c2-patches)
	}
	if m := r.Requests(t, "PUT", "/manifests/") - manifestsBefore; m > len(tags) {
		t.Errorf("second push put %d manifests, want at most %d", m, len(tags))
	}
}

func TestPushRefused(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true, Auth: true})
	img := motdImage(t, "refused\n")
	tag := []string{r.Addr + "/strata/app:v1"}
	for _, tc := range []struct {
		name         string
		dockerConfig string
		opts         commit.RegistryOptions
		wantErr      string
	}{
		{"no credentials", t.TempDir(), commit.RegistryOptions{Transport: r.Transport()}, "401 Unauthorized"},
		{"untrusted CA", r.DockerConfig, commit.RegistryOptions{}, "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("DOCKER_CONFIG", tc.dockerConfig)
			_, err := commit.Push(t.Context(), img, tagsOf(t, tag), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Push = %v, want an error mentioning %q", err, tc.wantErr)
			}
		})
	}
	if _, err := commit.Push(t.Context(), img, nil, commit.RegistryOptions{}); err == nil {
		t.Error("Push with no tags succeeded, want an error")
	}
}

// A base pulled from the registry is mounted into the new repository, not
// uploaded again: only the new layer and the config are sent.
func TestPushMountsBase(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true, Auth: true})
	t.Setenv("DOCKER_CONFIG", r.DockerConfig)
	tr := r.Transport()
	baseRef := r.Addr + "/library/busybox:1"
	if _, err := commit.Push(t.Context(), pullBusybox(t), tagsOf(t, []string{baseRef}), commit.RegistryOptions{Transport: tr}); err != nil {
		t.Fatal(err)
	}
	base, err := pullRef(t, baseRef, commit.PullOptions{RegistryOptions: commit.RegistryOptions{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	img, err := commit.Image(base, commit.ImageOptions{
		Steps:   []commit.Step{{Layer: newLayer(t, map[string]string{"etc/motd": "on top\n"}), CreatedBy: "run"}},
		Created: epoch,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := commit.Push(t.Context(), img, tagsOf(t, []string{r.Addr + "/apps/motd:1"}), commit.RegistryOptions{Transport: tr}); err != nil {
		t.Fatal(err)
	}
	baseLayers, err := base.Layers()
	if err != nil {
		t.Fatal(err)
	}
	bd, _ := baseLayers[0].Digest()
	if n := r.Requests(t, "POST", "/v2/apps/motd/blobs/uploads/?from=library%2Fbusybox&mount="+url.QueryEscape(bd.String())); n != 1 {
		t.Errorf("%d mount requests for the base layer, want 1", n)
	}
	if _, patches := blobUploads(t, r, "apps/motd"); patches != 2 {
		t.Errorf("%d blob chunks sent to apps/motd, want 2 (the new layer and the config)", patches)
	}
	pulled, err := pullRef(t, r.Addr+"/apps/motd:1", commit.PullOptions{RegistryOptions: commit.RegistryOptions{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	var got v1.Hash
	if ls, err := pulled.Layers(); err == nil && len(ls) == 2 {
		got, _ = ls[0].Digest()
	}
	if got != bd {
		t.Errorf("pushed image's first layer = %v, want the base's %v", got, bd)
	}
}

// Plain HTTP is allowed to a loopback registry without naming it insecure.
func TestPushPlainHTTPLoopback(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{})
	img := motdImage(t, "plain\n")
	got, err := commit.Push(t.Context(), img, tagsOf(t, []string{r.Addr + "/plain/app:v1"}), commit.RegistryOptions{})
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	back, err := pullRef(t, r.Addr+"/plain/app:v1", commit.PullOptions{})
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if d := digestOf(t, back); d != got {
		t.Errorf("pulled digest %v, pushed %v", d, got)
	}
}

func tagsOf(t testing.TB, refs []string) []name.Tag {
	t.Helper()
	var out []name.Tag
	for _, r := range refs {
		tag, err := name.NewTag(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tag)
	}
	return out
}

// TestPullMissingPlatform: an index without the asked platform is said so
// with the platforms it has, from a registry and from a layout alike.
func TestPullMissingPlatform(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{})
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: motdImage(t, "amd64\n"), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: motdImage(t, "v7\n"), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}}})
	if err := remote.WriteIndex(tagsOf(t, []string{r.Addr + "/multi/app:1"})[0], idx); err != nil {
		t.Fatalf("pushing the index: %v", err)
	}
	dir := t.TempDir()
	if _, err := layout.Write(dir, empty.Index); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "1"})); err != nil {
		t.Fatal(err)
	}
	arm64 := &v1.Platform{OS: "linux", Architecture: "arm64"}
	const want = "no image for platform linux/arm64 (it has linux/amd64, linux/arm/v7)"
	for _, ref := range []string{r.Addr + "/multi/app:1", "oci-layout://" + dir + ":1"} {
		_, err := pullRef(t, ref, commit.PullOptions{Platform: arm64})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Pull(%s, linux/arm64) = %v, want an error holding %q", ref, err, want)
		}
	}
}
