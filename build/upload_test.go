package build

import (
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/testutil"
)

// TestPushUploadsOnlyTheImagesLayers: a push gets the layers of the
// target stage and of the stage it continues, uploaded while the build
// runs; a stage only copied from keeps its layers to itself, since they
// are in no image pushed.
func TestPushUploadsOnlyTheImagesLayers(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{})
	tag, err := name.NewTag(r.Addr + "/strata/app:1")
	if err != nil {
		t.Fatal(err)
	}
	res, _, _, _, err := buildFake(t, `stages:
  - name: tools
    from: scratch
    steps:
      - run: write /tool private-tool
  - name: base
    from: scratch
    steps:
      - run: write /base base
  - name: app
    from: base
    steps:
      - copy: /tool
        from: tools
        to: /opt/tool
        owner: OWNER
      - run: write /app app
`, func(o *Options) {
		o.Tags = []name.Tag{tag}
		o.Outputs = []commit.Output{{Type: commit.OutputRegistry}}
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"tools": false, "base": true, "app": true}
	for _, s := range res.Steps {
		if s.Layer == nil {
			continue
		}
		resp, err := http.Head("http://" + r.Addr + "/v2/strata/app/blobs/" + s.Layer.Digest)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.StatusCode == http.StatusOK; got != want[s.Stage] { // the copy's layer is another: /opt/tool
			t.Errorf("stage %s, %s: layer in the registry = %t, want %t", s.Stage, s.Pos, got, want[s.Stage])
		}
	}
}
