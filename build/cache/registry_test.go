package cache

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/testutil"
)

// TestRegistryEntryMustDescribeItsLayer: a cache image in a registry whose
// entry claims another layer than the one it holds (another digest, or a
// diff_id its config does not list) is not a hit: the next step's key
// would chain on the claim while the image got the layer. One that
// describes its layer is.
func TestRegistryEntryMustDescribeItsLayer(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	repo, err := name.NewRepository(reg.Addr+"/cache", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	r := &Registry{Repo: repo}
	layer := func(content string) (*commit.Layer, *Layer) {
		l, err := commit.WriteLayer(t.Context(), bytes.NewReader(layerTar(t, content)), t.TempDir(), commit.Gzip)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := LayerOf(l, 1, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		return l, rec
	}
	real, rec := layer("real")
	_, other := layer("other")
	for _, tc := range []struct {
		name  string
		claim func() *Layer
		want  string // "": a hit
	}{
		{"honest", func() *Layer { return rec }, ""},
		{"another digest", func() *Layer { c := *rec; c.Digest, c.Size = other.Digest, other.Size; return &c }, "the entry claims " + other.Digest},
		{"another diff_id", func() *Layer { c := *rec; c.DiffID = other.DiffID; return &c }, "the entry claims " + other.DiffID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInputs()
			in.Step = tc.name
			e := &Entry{Key: in.Key(), Inputs: in, Layer: tc.claim()}
			if err := r.Put(t.Context(), e, real); err != nil {
				t.Fatal(err)
			}
			h, err := r.Get(t.Context(), e.Key)
			switch {
			case tc.want == "" && (err != nil || h == nil):
				t.Errorf("Get = %v, %v; want a hit", h, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Get = %v, %v; want an error saying %q", h, err, tc.want)
			}
		})
	}
}
