package commit

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// CacheLabel is the config label of a cache image that holds the cache
// entry (JSON, opaque to this package).
const CacheLabel = "dev.strata.cache.entry"

// A registry cache is a repository of plain single-layer (or layerless)
// images, one per cache key, tagged by the key: every registry accepts
// them, and their layers can be mounted into other repositories of the
// same registry.

// CacheGet looks tag up in the cache repository repo. It returns the
// entry's JSON and, if the entry has one, its layer: a remote layer whose
// digests are known and whose blob is not fetched until it is read.
func CacheGet(ctx context.Context, repo, tag string, o PushOptions) (entry []byte, layer v1.Layer, found bool, err error) {
	ro := registryOptions{insecure: o.Insecure, keychain: o.Keychain, transport: o.Transport}
	ref, err := cacheRef(ro, repo, tag)
	if err != nil {
		return nil, nil, false, err
	}
	img, err := remote.Image(ref, ro.remote(ctx)...)
	var terr *transport.Error
	if errors.As(err, &terr) && (terr.StatusCode == http.StatusNotFound || hasCode(terr, transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode)) {
		return nil, nil, false, nil
	}
	if err != nil {
		return nil, nil, false, fmt.Errorf("reading cache %s: %w", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, nil, false, fmt.Errorf("reading cache %s: %w", ref, err)
	}
	data, ok := cf.Config.Labels[CacheLabel]
	if !ok {
		return nil, nil, false, fmt.Errorf("%s is not a strata cache entry", ref)
	}
	ls, err := img.Layers()
	if err != nil {
		return nil, nil, false, err
	}
	if len(ls) > 0 {
		layer = ls[0]
	}
	return []byte(data), layer, true, nil
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

// CachePut writes a cache image for tag into repo: entry in its config,
// layer (nil for a step that changed no file) as its only layer. Blobs the
// registry has are not uploaded again; a layer read from another
// repository of the same registry is mounted.
func CachePut(ctx context.Context, repo, tag string, entry []byte, layer v1.Layer, o PushOptions) error {
	ro := registryOptions{insecure: o.Insecure, keychain: o.Keychain, transport: o.Transport}
	ref, err := cacheRef(ro, repo, tag)
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
	cf.Config.Labels = map[string]string{CacheLabel: string(entry)}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	if err := remote.Write(ref, img, ro.remote(ctx)...); err != nil {
		return fmt.Errorf("writing cache %s: %w", ref, err)
	}
	return nil
}

func cacheRef(ro registryOptions, repo, tag string) (name.Tag, error) {
	r, err := name.NewRepository(repo)
	if err != nil {
		return name.Tag{}, fmt.Errorf("cache repository %q: %w", repo, err)
	}
	ref, err := name.NewTag(repo+":"+tag, ro.nameOptions(r.RegistryStr())...)
	if err != nil {
		return name.Tag{}, fmt.Errorf("cache repository %q: %w", repo, err)
	}
	return ref, nil
}
