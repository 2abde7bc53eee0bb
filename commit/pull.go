package commit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PullOptions says how Pull resolves a source.
type PullOptions struct {
	RegistryOptions
	// Platform selects from a multi-platform index (default: the host's,
	// linux/GOARCH). For scratch it is the platform written in the config.
	Platform *v1.Platform
}

// Pull resolves a source into an image; its errors start with the
// source, a registry's worded by RegistryError. Images from a registry keep their
// source repository, so Push can mount their layers across repositories.
// Layers are fetched lazily, when read.
func Pull(ctx context.Context, src Source, o PullOptions) (v1.Image, error) {
	p := hostPlatform()
	if o.Platform != nil {
		p = *o.Platform
	}
	var img v1.Image
	var err error
	switch src.Kind {
	case SourceScratch:
		img, err = scratch(p)
	case SourceLayout:
		img, err = pullLayout(src.Path, src.Tag, src.Digest, p)
	case SourceArchive:
		img, err = tarball.ImageFromPath(src.Path, nil)
	case SourceRegistry:
		return pullRegistry(ctx, src, o.RegistryOptions, p)
	default:
		err = fmt.Errorf("unknown source kind %d", src.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	return img, nil
}

// pullRegistry fetches the image src names, choosing from an index by
// platform as imageFor does.
func pullRegistry(ctx context.Context, src Source, o RegistryOptions, p v1.Platform) (v1.Image, error) {
	desc, err := remote.Get(src.Ref, RemoteOptions(ctx, o)...)
	if err != nil {
		return nil, RegistryError(src.Ref.String(), err)
	}
	if err := parses(desc); err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	var img v1.Image
	if desc.MediaType.IsIndex() {
		var idx v1.ImageIndex
		if idx, err = desc.ImageIndex(); err == nil {
			img, err = imageOf(idx, p)
		}
	} else {
		img, err = desc.Image()
	}
	switch {
	case err == nil:
		return img, nil
	case errors.Is(err, ErrNoImage):
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	return nil, RegistryError(src.Ref.String(), err)
}

// parses checks that the manifest a registry answered for a base is an
// image's or an index's that strata can read: one that is not rules the
// base out (ErrNoImage), as a missing tag does.
func parses(desc *remote.Descriptor) error {
	if desc.MediaType.IsSchema1() {
		return NoImage(fmt.Errorf("its manifest is a Docker schema 1 manifest (%s), which strata cannot read: push the image again with a current docker or skopeo", desc.MediaType))
	}
	var err error
	if desc.MediaType.IsIndex() {
		_, err = v1.ParseIndexManifest(bytes.NewReader(desc.Manifest))
	} else {
		_, err = v1.ParseManifest(bytes.NewReader(desc.Manifest))
	}
	switch {
	case err == nil:
		return nil
	case !jsonType(desc.MediaType):
		// A proxy's or captive portal's page (text/html), not a
		// registry's answer: the network's state, not a missing base.
		return fmt.Errorf("the registry answered %s where a manifest was asked: is it a registry, or a proxy's or login page in front of one?", mediaTypeOr(desc.MediaType))
	}
	return NoImage(fmt.Errorf("the registry answered a manifest (%s, %s) that is not an image's or an index's: %w", desc.Digest, mediaTypeOr(desc.MediaType), err))
}

// jsonType reports whether mt names JSON, as every manifest media type
// does (or names nothing).
func jsonType(mt types.MediaType) bool {
	s := string(mt)
	return s == "" || s == "application/json" || strings.HasSuffix(s, "+json") || strings.HasSuffix(s, ".json") ||
		strings.HasPrefix(s, "application/vnd.oci.") || strings.HasPrefix(s, "application/vnd.docker.")
}

// mediaTypeOr is mt, or says there is none.
func mediaTypeOr(mt types.MediaType) string {
	if mt == "" {
		return "no media type"
	}
	return string(mt)
}

// ErrNoImage is in the errors (errors.Is) of a base that is there but
// holds no image to build on: an index without an image for the build's
// platform, a manifest that does not parse, a single-platform image of
// another platform. Like a missing tag, it is a base that does not exist
// as the recipe names it (a registry answered; asking again will not help).
var ErrNoImage = errors.New("no image for the build")

// NoImage marks err as ErrNoImage, keeping its message.
func NoImage(err error) error { return &noImageError{err} }

type noImageError struct{ err error }

func (e *noImageError) Error() string        { return e.err.Error() }
func (e *noImageError) Unwrap() error        { return e.err }
func (e *noImageError) Is(target error) bool { return target == ErrNoImage }

func hostPlatform() v1.Platform {
	return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

// scratch is an image with no layers and OCI media types (ggcr's
// empty.Image is Docker-typed).
func scratch(p v1.Platform) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	return mutate.ConfigFile(img, &v1.ConfigFile{
		OS:           p.OS,
		Architecture: p.Architecture,
		Variant:      p.Variant,
		RootFS:       v1.RootFS{Type: "layers"},
	})
}

// pullLayout opens the image of the layout dir that tag or digest names
// (or its only image).
func pullLayout(dir, tag, digest string, p v1.Platform) (v1.Image, error) {
	idx, d, listed, err := findLayoutEntry(dir, tag, digest)
	if err != nil {
		return nil, err
	}
	if !listed {
		// The digest may name an image the index does not list (for
		// example one of a nested index's manifests).
		return idx.Image(d.Digest)
	}
	return imageFor(idx, d, p)
}

// LayoutEntry returns the root index of the layout dir and its entry that
// tag or digest names (or its only entry), as Pull finds it: an image or
// an index.
func LayoutEntry(dir, tag, digest string) (v1.ImageIndex, v1.Descriptor, error) {
	idx, d, listed, err := findLayoutEntry(dir, tag, digest)
	if err == nil && !listed {
		err = fmt.Errorf("%s lists no entry %s", dir, digest)
	}
	return idx, d, err
}

// findLayoutEntry is LayoutEntry; a digest the layout's index does not list
// is returned as a descriptor of that digest, listed false.
func findLayoutEntry(dir, tag, digest string) (idx v1.ImageIndex, d v1.Descriptor, listed bool, err error) {
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		return nil, d, false, fmt.Errorf("no OCI image layout there (%s has no index.json)", dir)
	}
	if idx, err = layout.ImageIndexFromPath(dir); err != nil {
		return nil, d, false, err
	}
	idx = verifiedIndex{inner: idx, dir: dir}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, d, false, err
	}
	var found []v1.Descriptor
	for _, d := range im.Manifests {
		switch {
		case digest != "":
			if d.Digest.String() == digest {
				found = append(found, d)
			}
		case tag != "":
			if d.Annotations[ocispec.AnnotationRefName] == tag {
				found = append(found, d)
			}
		default:
			found = append(found, d)
		}
	}
	if len(found) == 0 && tag != "" {
		// strata writes the full --tag ("busybox:latest") as the ref name,
		// buildx only the tag ("latest"): let :latest name either.
		for _, d := range im.Manifests {
			if refTag(d.Annotations[ocispec.AnnotationRefName]) == tag {
				found = append(found, d)
			}
		}
		if n := distinctDigests(found); n > 1 {
			return nil, d, false, fmt.Errorf("%s holds %d images tagged %q: name one with @sha256:…", dir, n, tag)
		}
	}
	if len(found) == 0 && digest != "" {
		h, err := v1.NewHash(digest)
		if err != nil {
			return nil, d, false, err
		}
		return idx, v1.Descriptor{Digest: h}, false, nil
	}
	switch {
	case len(found) == 0 && tag != "":
		return nil, d, false, fmt.Errorf("no image tagged %q in %s", tag, dir)
	case len(found) == 0:
		return nil, d, false, fmt.Errorf("no image in %s", dir)
	case distinctDigests(found) > 1 && tag == "" && digest == "":
		return nil, d, false, fmt.Errorf("%s holds %d images: name one with :TAG or @sha256:…", dir, distinctDigests(found))
	}
	return idx, found[0], true, nil
}

// distinctDigests is how many images ds name: a layout written with two
// tags (-t a -t b) lists one image twice.
func distinctDigests(ds []v1.Descriptor) int {
	seen := map[v1.Hash]bool{}
	for _, d := range ds {
		seen[d.Digest] = true
	}
	return len(seen)
}

// imageFor opens the image d names, choosing by platform if d is an index.
func imageFor(idx v1.ImageIndex, d v1.Descriptor, p v1.Platform) (v1.Image, error) {
	if !d.MediaType.IsIndex() {
		return idx.Image(d.Digest)
	}
	child, err := idx.ImageIndex(d.Digest)
	if err != nil {
		return nil, err
	}
	img, err := imageOf(child, p)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", d.Digest, err)
	}
	return img, nil
}

// imageOf opens the image of idx for p (see choose).
// An entry naming no platform is taken as containerd takes it: an image
// for its config's platform, an index to look into.
func imageOf(idx v1.ImageIndex, p v1.Platform) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	ms := slices.Clone(im.Manifests)
	var nested []v1.Descriptor
	for i, m := range ms {
		switch {
		case m.Platform != nil:
		case m.MediaType.IsIndex():
			nested = append(nested, m)
		default:
			if ms[i].Platform, err = configPlatform(idx, m.Digest); err != nil {
				return nil, err
			}
		}
	}
	if m, ok := choose(ms, p); ok {
		return imageFor(idx, m, p)
	}
	for _, m := range nested {
		img, err := imageFor(idx, m, p)
		if !errors.Is(err, ErrNoImage) {
			return img, err
		}
	}
	return nil, noPlatform(p, ms)
}

// configPlatform is the platform the config of idx's image h names, or
// nil if it names none.
func configPlatform(idx v1.ImageIndex, h v1.Hash) (*v1.Platform, error) {
	img, err := idx.Image(h)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	if cf.Architecture == "" {
		return nil, nil
	}
	return cf.Platform(), nil
}

// choose picks the entry of an index's ms for p as containerd's
// platforms.Only does: the entry of p itself (amd64 is amd64/v1, arm64
// arm64/v8, arm arm/v7), else for amd64/vN and arm/vN the highest lower
// level the CPU also runs; never a higher one (amd64/v3 code faults on an
// amd64/v2 CPU), and never by the order of the entries alone.
func choose(ms []v1.Descriptor, p v1.Platform) (v1.Descriptor, bool) {
	for _, v := range variantsFor(p) {
		for _, m := range ms {
			if m.Platform != nil && m.Platform.OS == p.OS && m.Platform.Architecture == p.Architecture && normalVariant(*m.Platform) == v {
				return m, true
			}
		}
	}
	return v1.Descriptor{}, false
}

// PlatformFits reports whether an image built for got runs as one for
// want: the same OS and architecture, and the same variant or, for amd64
// and arm, a lower level (amd64 is amd64/v1, arm64 arm64/v8, arm arm/v7).
func PlatformFits(got, want v1.Platform) bool {
	return got.OS == want.OS && got.Architecture == want.Architecture && slices.Contains(variantsFor(want), normalVariant(got))
}

// variantsFor is the variants of p's architecture an image may have to
// run as p, best first: p's, then the lower levels of amd64 (down to v1)
// and of arm (down to v5), as containerd's platformVector lists them.
func variantsFor(p v1.Platform) []string {
	v := normalVariant(p)
	out := []string{v}
	low := map[string]int{"amd64": 1, "arm": 5}[p.Architecture]
	if low == 0 {
		return out
	}
	n, err := strconv.Atoi(strings.TrimPrefix(v, "v"))
	if v == "" {
		n, err = low, nil
	}
	for n--; err == nil && n >= low; n-- {
		out = append(out, normalVariant(v1.Platform{Architecture: p.Architecture, Variant: "v" + strconv.Itoa(n)}))
	}
	return out
}

// normalVariant is p's variant as containerd normalizes it: amd64/v1 is
// amd64, arm64/v8 arm64, arm arm/v7.
func normalVariant(p v1.Platform) string {
	switch {
	case p.Architecture == "amd64" && p.Variant == "v1",
		p.Architecture == "arm64" && (p.Variant == "v8" || p.Variant == "8"):
		return ""
	case p.Architecture == "arm" && p.Variant == "":
		return "v7"
	case p.Architecture == "arm" && len(p.Variant) == 1:
		return "v" + p.Variant
	}
	return p.Variant
}

// noPlatform says that an index has no image for p, and which platforms
// it has.
func noPlatform(p v1.Platform, ms []v1.Descriptor) error {
	var have []string
	for _, m := range ms {
		if m.Platform != nil && !slices.Contains(have, m.Platform.String()) {
			have = append(have, m.Platform.String())
		}
	}
	if len(have) == 0 {
		return NoImage(fmt.Errorf("no image for platform %s (its images name no platform)", p.String()))
	}
	return NoImage(fmt.Errorf("no image for platform %s (it has %s)", p.String(), strings.Join(have, ", ")))
}

// refTag is the tag part of a ref name such as "reg:5000/app:1.0" ("1.0"),
// or "" if it has none.
func refTag(name string) string {
	if i := strings.LastIndex(name, ":"); i >= 0 && !strings.Contains(name[i:], "/") {
		return name[i+1:]
	}
	return ""
}
