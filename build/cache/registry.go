package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/stratabuild/strata/commit"
)

// EntryLabel is the config label of a registry cache image that holds its
// entry as JSON.
const EntryLabel = "dev.strata.cache.entry"

// Registry is a cache in a registry repository, shared by CI runners: one
// plain single-layer (or layerless) image per key, tagged by the key
// (prefixed by Prefix, so that one repository can hold several caches).
// Every registry accepts such images, and their layers can be mounted
// into other repositories of the same registry.
type Registry struct {
	Repo    name.Repository
	Prefix  string
	Options commit.RegistryOptions
}

var _ Store = (*Registry)(nil)

func (r *Registry) String() string {
	if r.Prefix != "" {
		return r.Repo.String() + ":" + r.Prefix
	}
	return r.Repo.String()
}

// maxTag is the longest tag distribution accepts ([\w][\w.-]{0,127}).
const maxTag = 128

// tag is where the entry of key lives: the key with "-" for ":" (tags
// cannot hold ":"), prefixed by tagPrefix(Prefix, …) and "-".
func (r *Registry) tag(key string) name.Tag {
	t := strings.Replace(key, ":", "-", 1)
	if r.Prefix != "" {
		t = tagPrefix(r.Prefix, maxTag-len(t)-1) + "-" + t
	}
	return r.Repo.Tag(t)
}

// tagPrefix is prefix if it has at most n characters. A longer one
// (any valid tag can be given as a prefix, and a key's part is 71
// characters, "sha256-" and 64 hex digits, so more than 56 would make
// tags over distribution's limit) is cut to its first n-13 characters,
// "-" and the first 12 hex digits of the sha256 of the whole prefix:
// every runner given the same prefix makes the same tags, and two long
// prefixes that share their beginning still make different ones.
func tagPrefix(prefix string, n int) string {
	if len(prefix) <= n {
		return prefix
	}
	sum := sha256.Sum256([]byte(prefix))
	return prefix[:n-13] + "-" + hex.EncodeToString(sum[:])[:12]
}

// Get reads the entry of key: its manifest and small config only; the
// layer is a remote layer whose blob is fetched when first read.
func (r *Registry) Get(ctx context.Context, key string) (*Hit, error) {
	ref := r.tag(key)
	img, err := remote.Image(ref, commit.RemoteOptions(ctx, r.Options)...)
	var terr *transport.Error
	if errors.As(err, &terr) && (terr.StatusCode == http.StatusNotFound || hasCode(terr, transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode)) {
		return nil, nil
	}
	if err != nil {
		return nil, commit.RegistryError(ref.String(), err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, commit.RegistryError(ref.String(), err)
	}
	data, ok := cf.Config.Labels[EntryLabel]
	if !ok {
		return nil, fmt.Errorf("%s is not a strata cache entry", ref)
	}
	var e Entry
	if err := json.Unmarshal([]byte(data), &e); err != nil || e.Key != key {
		return nil, fmt.Errorf("%s holds a malformed cache entry", ref)
	}
	ls, err := img.Layers()
	if err != nil {
		return nil, err
	}
	h := &Hit{Entry: &e, From: r.String()}
	if len(ls) > 0 {
		h.Layer = ls[0]
	}
	if (e.Layer == nil) != (h.Layer == nil) {
		return nil, fmt.Errorf("%s holds a malformed cache entry", ref)
	}
	if e.Layer == nil {
		return h, nil
	}
	// The next step's key chains on the diffID the entry claims, and
	// the image gets this layer: they must be one (a fully cached build
	// never reads the layer to see).
	if err := sameLayer(e.Layer, h.Layer, cf); err != nil {
		return nil, fmt.Errorf("%s holds a cache entry that does not describe its layer: %w", ref, err)
	}
	// A registry may have lost the blob (garbage-collected, deleted)
	// while the manifest stays: that entry cannot be used, and a build
	// that took it would fail reading the layer, later.
	ok, err = partial.Exists(h.Layer)
	if err != nil {
		return nil, fmt.Errorf("checking the layer of %s: %w", ref, commit.RegistryError(ref.String(), err))
	}
	if !ok {
		return nil, &LayerGoneError{Entry: ref.String(), Layer: e.Layer.Digest}
	}
	h.Layer = namedLayer(h.Layer, r.String())
	return h, nil
}

// A LayerGoneError is the error of a Get that found the entry of the key
// in a registry, but not its layer's blob: a miss, which Cache.Explain
// reports.
type LayerGoneError struct {
	Entry string // the entry's reference
	Layer string // the missing blob's digest
}

func (e *LayerGoneError) Error() string {
	return fmt.Sprintf("%s has the entry, but the registry no longer has its layer blob %s", e.Entry, e.Layer)
}

// namedLayer is l, a layer of a registry cache, whose read errors name
// the cache: a step that took it can fail only later, when another
// step or an output reads it. It stays mountable.
func namedLayer(l v1.Layer, cache string) v1.Layer {
	nl := &cacheLayer{Layer: l, cache: cache}
	if ml, ok := l.(*remote.MountableLayer); ok {
		nl.Layer = ml.Layer
		return &remote.MountableLayer{Layer: nl, Reference: ml.Reference}
	}
	return nl
}

type cacheLayer struct {
	v1.Layer
	cache string
}

func (l *cacheLayer) wrap(err error) error {
	return fmt.Errorf("reading a layer of the cache %s: %w", l.cache, err)
}

func (l *cacheLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, l.wrap(err)
	}
	return &cacheReader{ReadCloser: rc, l: l}, nil
}

func (l *cacheLayer) Uncompressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Uncompressed()
	if err != nil {
		return nil, l.wrap(err)
	}
	return &cacheReader{ReadCloser: rc, l: l}, nil
}

// Descriptor and Exists are those of the layer: ggcr's pushes use them.
func (l *cacheLayer) Descriptor() (*v1.Descriptor, error) { return partial.Descriptor(l.Layer) }
func (l *cacheLayer) Exists() (bool, error)               { return partial.Exists(l.Layer) }

type cacheReader struct {
	io.ReadCloser
	l *cacheLayer
}

func (r *cacheReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF { //nolint:errorlint // io.EOF is returned unwrapped, by contract
		err = r.l.wrap(err)
	}
	return n, err
}

// sameLayer checks that the layer l of a cache image, whose config is cf,
// is the one the entry's record claims.
func sameLayer(claim *Layer, l v1.Layer, cf *v1.ConfigFile) error {
	dg, err := l.Digest()
	if err != nil {
		return err
	}
	size, err := l.Size()
	if err != nil {
		return err
	}
	switch {
	case dg.String() != claim.Digest || size != claim.Size:
		return fmt.Errorf("its layer is %s, %d bytes; the entry claims %s, %d bytes", dg, size, claim.Digest, claim.Size)
	case len(cf.RootFS.DiffIDs) != 1 || cf.RootFS.DiffIDs[0].String() != claim.DiffID:
		return fmt.Errorf("its config lists diff_ids %v; the entry claims %s", cf.RootFS.DiffIDs, claim.DiffID)
	}
	return nil
}

func hasCode(e *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range e.Errors {
		for _, c := range codes {
			if d.Code == c {
				return true
			}
		}
	}
	return false
}

// Put writes the cache image of e. Blobs the registry has are not
// uploaded again; a layer read from another repository of the same
// registry is mounted. An entry of e's key the registry holds with the
// same layer, its blob there, is left as it is: for a build that changed
// nothing, each step's entry costs reading its manifest and asking for
// its blob, not writing a new config blob and manifest.
func (r *Registry) Put(ctx context.Context, e *Entry, layer v1.Layer) error {
	if r.has(ctx, e.Key, layer) {
		return nil
	}
	shared := *e
	shared.Inputs.StepID = sharedStepID(e.Inputs.StepID)
	data, err := json.Marshal(&shared)
	if err != nil {
		return err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if layer != nil {
		if img, err = mutate.AppendLayers(img, layer); err != nil {
			return err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "unknown"
	cf.Config.Labels = map[string]string{EntryLabel: string(data)}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	ref := r.tag(e.Key)
	if err := remote.Write(ref, img, commit.RemoteOptions(ctx, r.Options)...); err != nil {
		return fmt.Errorf("writing the cache: %w", commit.RegistryError(ref.String(), err))
	}
	return nil
}

// has reports whether the registry holds a whole entry of key — one Get
// takes: its label names the key and describes its layer, whose blob is
// there — and whose layer is layer (nil: none): writing it again would
// change its times only. Any doubt (an error) is a no, so that writing
// it mends it.
func (r *Registry) has(ctx context.Context, key string, layer v1.Layer) bool {
	h, err := r.Get(ctx, key)
	if err != nil || h == nil || (h.Layer == nil) != (layer == nil) {
		return false
	}
	if layer == nil {
		return true
	}
	want, err := layer.Digest()
	if err != nil {
		return false
	}
	got, err := h.Layer.Digest()
	return err == nil && got == want
}

// sharedStepID is stepID (FILE:STAGE:INDEX, FILE the recipe's absolute
// path on the runner) as a registry entry holds it: FILE is only its base
// name, so that the runner's directories stay on the runner. The key
// does not depend on the step ID, and nothing reads it from a registry
// but a person explaining an entry.
func sharedStepID(stepID string) string {
	rest, index, ok := cutLast(stepID, ":")
	if !ok {
		return ""
	}
	file, stage, ok := cutLast(rest, ":")
	if !ok {
		return ""
	}
	return filepath.Base(file) + ":" + stage + ":" + index
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}
