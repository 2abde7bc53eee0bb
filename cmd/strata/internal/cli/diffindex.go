package cli

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/stratabuild/strata/build/plan"
	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/imagediff"
	"github.com/stratabuild/strata/recipe"
)

// openIndex returns the images, by platform, of the multi-platform image
// ref names, or nil when ref names a single image — or names nothing
// that can be read, which resolveImage then reports.
func openIndex(ctx context.Context, ref string, o commit.PullOptions) (*imagediff.Index, error) {
	b, err := recipe.ParseBase(ref, ".")
	if err != nil {
		return nil, nil // resolveImage reports it
	}
	src, err := plan.Source(b, o.RegistryOptions)
	if err != nil {
		return nil, nil // resolveImage reports it
	}
	var idx v1.ImageIndex
	switch src.Kind {
	case commit.SourceRegistry:
		desc, err := remote.Get(src.Ref, commit.RemoteOptions(ctx, o.RegistryOptions)...)
		if err != nil || !desc.MediaType.IsIndex() {
			return nil, nil // resolveImage reports it
		}
		if idx, err = desc.ImageIndex(); err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
	case commit.SourceLayout:
		if idx = layoutIndex(src); idx == nil {
			return nil, nil
		}
	default:
		return nil, nil
	}
	return indexImages(ref, idx)
}

// layoutIndex returns the index a layout's tag or digest names (or its
// only entry names), as commit.Pull finds it, if that is an index; nil
// otherwise.
func layoutIndex(src commit.Source) v1.ImageIndex {
	root, d, err := commit.LayoutEntry(src.Path, src.Tag, src.Digest)
	if err != nil || !d.MediaType.IsIndex() {
		return nil
	}
	idx, err := root.ImageIndex(d.Digest)
	if err != nil {
		return nil
	}
	return idx
}

// indexImages lists idx's images by platform. An entry naming no
// platform is its config's platform, as the pull takes it; entries for
// "unknown/unknown" (buildx's attestations) are left out.
func indexImages(ref string, idx v1.ImageIndex) (*imagediff.Index, error) {
	digest, err := idx.Digest()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	out := &imagediff.Index{Ref: ref, Digest: digest.String(), Images: map[string]imagediff.Image{}}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.OS == "unknown" || !d.MediaType.IsImage() {
			continue
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("%s: image %s: %w", ref, d.Digest, err)
		}
		platform := d.Platform
		if platform == nil {
			p, err := imagePlatform(img)
			if err != nil {
				return nil, fmt.Errorf("%s: image %s: %w", ref, d.Digest, err)
			}
			platform = &p
		}
		p := platformKey(*platform)
		if _, dup := out.Images[p]; dup {
			continue
		}
		out.Images[p] = imagediff.Image{Ref: ref + " (" + p + ")", Image: img}
	}
	return out, nil
}

// singleIndex makes a single image the side of an index comparison: the
// index of the one platform its config names.
func singleIndex(img imagediff.Image) (*imagediff.Index, error) {
	p, err := imagePlatform(img.Image)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", img.Ref, err)
	}
	return &imagediff.Index{Ref: img.Ref, Images: map[string]imagediff.Image{platformKey(p): img}}, nil
}

// imagePlatform is the platform an image's config names.
func imagePlatform(img v1.Image) (v1.Platform, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return v1.Platform{}, fmt.Errorf("reading the config: %w", err)
	}
	if p := cfg.Platform(); p != nil {
		return *p, nil
	}
	return v1.Platform{}, nil
}

// platformKey names a platform as the comparison does: OS/ARCH[/VARIANT],
// the variant as --platform normalises it (recipe.DefaultVariant), so
// that an index's entry and an image's config name it alike.
func platformKey(p v1.Platform) string {
	p.Variant = recipe.DefaultVariant(p.Architecture, p.Variant)
	return v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}.String()
}
