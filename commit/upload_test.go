package commit_test

import (
	"log/slog"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/testutil"
)

// An Uploader puts a layer in every repository the tags name and nothing
// else; the push after it uploads only what is left (the base layer and
// the config), and the image reads back whole.
func TestUploaderBeforePush(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true, Auth: true})
	t.Setenv("DOCKER_CONFIG", r.DockerConfig)
	opts := commit.RegistryOptions{Transport: r.Transport()}
	img := motdImage(t, "uploaded early\n")
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	step := ls[len(ls)-1]
	tags := tagsOf(t, []string{r.Addr + "/strata/app:v1", r.Addr + "/strata/app:latest", r.Addr + "/strata/other:v1"})

	u := commit.NewUploader(t.Context(), tags, opts, slog.New(slog.DiscardHandler))
	u.Add(step)
	u.Wait()
	for _, repo := range []string{"strata/app", "strata/other"} {
		if posts, patches := blobUploads(t, r, repo); posts != 1 || patches != 1 {
			t.Errorf("%s: %d uploads with %d chunks before the push, want the step's layer alone", repo, posts, patches)
		}
	}
	if _, err := remote.Head(tags[0], commit.RemoteOptions(t.Context(), opts)...); err == nil {
		t.Errorf("%s exists before the push", tags[0])
	}

	if _, err := commit.Push(t.Context(), img, tags, opts); err != nil {
		t.Fatalf("Push: %v", err)
	}
	if posts, _ := blobUploads(t, r, "strata/app"); posts != 3 {
		t.Errorf("strata/app: %d uploads in all, want 3 (the push adds the base layer and the config)", posts)
	}
	pulled, err := pullRef(t, tags[2].String(), commit.PullOptions{RegistryOptions: opts})
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if got, want := digestOf(t, pulled), digestOf(t, img); got != want {
		t.Errorf("pulled %s, pushed %s", got, want)
	}
}

// After Wait, Add starts nothing: the build waited for the uploads before
// its push.
func TestUploaderAddAfterWait(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{})
	tags := tagsOf(t, []string{r.Addr + "/strata/late:v1"})
	u := commit.NewUploader(t.Context(), tags, commit.RegistryOptions{}, slog.New(slog.DiscardHandler))
	u.Wait()
	u.Add(newLayer(t, map[string]string{"late": "x"}))
	u.Wait()
	if posts, _ := blobUploads(t, r, "strata/late"); posts != 0 {
		t.Errorf("%d uploads after Wait, want none", posts)
	}
}

// Without tags there is nothing to upload to: a nil Uploader, whose Add
// and Wait do nothing.
func TestUploaderWithoutTags(t *testing.T) {
	u := commit.NewUploader(t.Context(), nil, commit.RegistryOptions{}, slog.New(slog.DiscardHandler))
	if u != nil {
		t.Fatalf("NewUploader without tags = %v, want nil", u)
	}
	u.Add(nil)
	u.Wait()
}
