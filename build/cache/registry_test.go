package cache

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

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
	real, rec := testLayer(t, "real")
	_, other := testLayer(t, "other")
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

// TestRegistryLongPrefix: any valid tag can prefix a registry cache's
// entries; one too long to fit beside a key is shortened the same way on
// every runner, and two that share their beginning stay apart.
func TestRegistryLongPrefix(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	repo, err := name.NewRepository(reg.Addr+"/cache", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("p", 127)
	in := baseInputs()
	e := &Entry{Key: in.Key(), Inputs: in}
	seen := map[string]string{}
	for _, prefix := range []string{"short", strings.Repeat("p", 56), strings.Repeat("p", 57), long + "a", long + "b"} {
		w := &Registry{Repo: repo, Prefix: prefix}
		tag := w.tag(e.Key).TagStr()
		if len(tag) > maxTag {
			t.Errorf("prefix of %d characters: tag %q has %d characters, over %d", len(prefix), tag, len(tag), maxTag)
		}
		if _, err := name.NewTag(repo.Name()+":"+tag, name.StrictValidation); err != nil {
			t.Errorf("prefix of %d characters: tag %q: %v", len(prefix), tag, err)
		}
		if p, ok := seen[tag]; ok {
			t.Errorf("prefixes %q and %q give one tag %q", p, prefix, tag)
		}
		seen[tag] = prefix
		if err := w.Put(t.Context(), e, nil); err != nil {
			t.Fatalf("prefix of %d characters: Put: %v", len(prefix), err)
		}
		// Another runner, given the same prefix, finds it.
		r := &Registry{Repo: repo, Prefix: prefix}
		if h, err := r.Get(t.Context(), e.Key); err != nil || h == nil {
			t.Errorf("prefix of %d characters: Get = %v, %v; want a hit", len(prefix), h, err)
		}
	}
}

// TestRegistryEntryLeavesRunnerPathsOut: the step ID of an entry names the
// recipe by its absolute path on the runner; what goes to a registry names
// it by its base name only, under the same key.
func TestRegistryEntryLeavesRunnerPathsOut(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	repo, err := name.NewRepository(reg.Addr+"/cache", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	r := &Registry{Repo: repo}
	in := baseInputs()
	in.StepID = "/home/runner/work/secret-project/strata.yaml:build:3"
	e := &Entry{Key: in.Key(), Inputs: in}
	if err := r.Put(t.Context(), e, nil); err != nil {
		t.Fatal(err)
	}
	if e.Inputs.StepID != in.StepID {
		t.Errorf("Put changed the caller's entry: step ID %q", e.Inputs.StepID)
	}
	img, err := remote.Image(r.tag(e.Key))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if label := cf.Config.Labels[EntryLabel]; strings.Contains(label, "/home/runner") {
		t.Errorf("the registry's entry holds the runner's path: %s", label)
	}
	h, err := r.Get(t.Context(), e.Key)
	if err != nil || h == nil {
		t.Fatalf("Get = %v, %v; want a hit", h, err)
	}
	if got, want := h.Entry.Inputs.StepID, "strata.yaml:build:3"; got != want {
		t.Errorf("step ID in the registry = %q, want %q", got, want)
	}
	if got := h.Entry.Inputs.Key(); got != e.Key {
		t.Errorf("the registry's entry's inputs have key %s, want %s", got, e.Key)
	}
}

// TestRegistryEntryWithoutItsBlob: a registry that lost an entry's layer
// blob (garbage-collected, deleted) but kept its manifest has no hit for
// the key: the step runs, and the miss says why. A hit taken before the
// blob went fails, when read, naming the cache.
func TestRegistryEntryWithoutItsBlob(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	repo, err := name.NewRepository(reg.Addr+"/cache", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	r := &Registry{Repo: repo}
	l, rec := testLayer(t, "gone")
	in := baseInputs()
	e := &Entry{Key: in.Key(), Inputs: in, Layer: rec}
	if err := r.Put(t.Context(), e, l); err != nil {
		t.Fatal(err)
	}
	early, err := r.Get(t.Context(), e.Key)
	if err != nil || early == nil {
		t.Fatalf("Get = %v, %v; want a hit", early, err)
	}

	deleteBlob(t, reg.Addr, rec.Digest)

	var gone *LayerGoneError
	if h, err := r.Get(t.Context(), e.Key); !errors.As(err, &gone) {
		t.Errorf("Get = %v, %v; want a LayerGoneError", h, err)
	}
	local, err := OpenLocal(t.TempDir(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := &Cache{Local: local, From: []Store{r}}
	if h, err := c.Lookup(t.Context(), e.Key); h != nil || err != nil {
		t.Errorf("Lookup = %v, %v; want a miss", h, err)
	}
	if why, want := c.Explain(&in), "no longer has its layer blob "+rec.Digest; !strings.Contains(why, want) {
		t.Errorf("Explain = %q, want it to say %q", why, want)
	}

	rc, err := early.Layer.Compressed()
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
	}
	if want := "cache " + r.String(); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("reading the layer of a hit whose blob is gone: %v; want an error naming %q", err, want)
	}
	if _, ok := early.Layer.(*remote.MountableLayer); !ok {
		t.Errorf("the layer of a hit is a %T, not mountable", early.Layer)
	}
}

// TestRegistryPutLeavesWhatItHas: putting again an entry the registry
// holds, with its layer and blob, writes nothing (a CI build that changed
// nothing rewrote every step's cache image, eight requests each); once
// the blob is gone, it is written again.
func TestRegistryPutLeavesWhatItHas(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	var mu sync.Mutex
	var writes, requests int
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: reg.Addr})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		requests++
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			writes++
		}
		mu.Unlock()
		proxy.ServeHTTP(w, req)
	}))
	defer srv.Close()
	repo, err := name.NewRepository(strings.TrimPrefix(srv.URL, "http://")+"/cache", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	r := &Registry{Repo: repo}
	l, rec := testLayer(t, "kept")
	in := baseInputs()
	e := &Entry{Key: in.Key(), Inputs: in, Layer: rec, Created: time.Now()}
	noLayer := baseInputs()
	noLayer.Step = "changes nothing"
	empty := &Entry{Key: noLayer.Key(), Inputs: noLayer, Created: time.Now()}
	put := func() (int, int) {
		mu.Lock()
		writes, requests = 0, 0
		mu.Unlock()
		if err := r.Put(t.Context(), e, l); err != nil {
			t.Fatal(err)
		}
		if err := r.Put(t.Context(), empty, nil); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		return writes, requests
	}
	if w, _ := put(); w == 0 {
		t.Fatal("the first Put wrote nothing")
	}
	e.LastUsed, empty.LastUsed = time.Now().Add(time.Hour), time.Now().Add(time.Hour)
	w, n := put()
	if w != 0 || n > 8 {
		t.Errorf("putting the entries again: %d writes in %d requests, want none in a few", w, n)
	}
	t.Logf("putting the two entries again: %d requests", n)

	// An entry that is not whole (its label damaged) is written again.
	img, err := remote.Image(r.tag(e.Key), remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config.Labels[EntryLabel] = "{garbage"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r.tag(e.Key), img, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	if w, _ := put(); w == 0 {
		t.Error("the entry damaged, Put wrote nothing")
	}
	if h, err := r.Get(t.Context(), e.Key); err != nil || h == nil {
		t.Errorf("Get after the damaged entry was put again = %v, %v; want a hit", h, err)
	}

	deleteBlob(t, reg.Addr, rec.Digest)
	// A later build's entry (go-containerregistry writes nothing for a
	// manifest the registry has already, blobs included).
	e.LastUsed = time.Now().Add(2 * time.Hour)
	if w, _ := put(); w == 0 {
		t.Error("the blob gone, Put wrote nothing")
	}
	if h, err := r.Get(t.Context(), e.Key); err != nil || h == nil {
		t.Errorf("Get after the blob was written again = %v, %v; want a hit", h, err)
	}
}

// testLayer writes a gzip layer holding content and returns it and its
// record.
func testLayer(t *testing.T, content string) (*commit.Layer, *Layer) {
	t.Helper()
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

// deleteBlob deletes the blob digest of the repository cache on the
// registry at addr, as its garbage collection would.
func deleteBlob(t *testing.T, addr, digest string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodDelete, "http://"+addr+"/v2/cache/blobs/"+digest, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("deleting the blob: %s", resp.Status)
	}
}
