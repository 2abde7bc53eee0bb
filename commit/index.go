package commit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Index makes an OCI image index of images, one per platform, each listed
// with the platform its config names, in the order given. Two images of
// one platform are refused: a consumer could only ever pull the first.
func Index(images []v1.Image) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	adds := make([]mutate.IndexAddendum, 0, len(images))
	for _, img := range images {
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		desc, err := descriptor(img)
		if err != nil {
			return nil, err
		}
		desc.Platform = cf.Platform()
		for _, a := range adds {
			if desc.Platform != nil && a.Platform != nil && a.Platform.Equals(*desc.Platform) {
				return nil, fmt.Errorf("making the index: two images for %s", desc.Platform)
			}
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: desc})
	}
	return mutate.AppendManifests(idx, adds...), nil
}

// WriteIndex writes images, one per platform, as one image index to every
// output: OCI layouts and registries hold an index; a docker archive and
// the daemon hold one image, so they are refused (CheckIndexOutputs says
// so before a build). Layouts get the images with their layers saved to
// and read from o.Blobs, pushes the images as they are.
func WriteIndex(ctx context.Context, images []v1.Image, outs []Output, o WriteOptions) (v1.Hash, error) {
	if err := CheckIndexOutputs(outs); err != nil {
		return v1.Hash{}, err
	}
	idx, err := Index(images)
	if err != nil {
		return v1.Hash{}, err
	}
	digest, err := idx.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	local := idx
	if o.Blobs != "" && slices.ContainsFunc(outs, func(out Output) bool { return out.Type == OutputOCI }) {
		var locals []v1.Image
		for _, img := range images {
			if err := saveBlobs(ctx, img, o.Blobs); err != nil {
				return v1.Hash{}, err
			}
			locals = append(locals, WithLocalBlobs(img, o.Blobs))
		}
		if local, err = Index(locals); err != nil {
			return v1.Hash{}, err
		}
	}
	tags := tagNames(o.Tags)
	for _, out := range outs {
		start := time.Now()
		switch out.Type {
		case OutputOCI:
			err = WriteOCILayoutIndex(ctx, out.Dest, local, tags)
		case OutputRegistry:
			err = pushIndex(ctx, idx, o)
		}
		if err != nil && out.Type == OutputRegistry {
			return v1.Hash{}, fmt.Errorf("pushing: %w", err)
		}
		if err != nil {
			return v1.Hash{}, fmt.Errorf("writing to %s: %w", out, err)
		}
		if o.Done != nil {
			o.Done(out, time.Since(start))
		}
	}
	return digest, nil
}

// pushIndex pushes idx to every tag; a second tag of a repository gets the
// manifest only.
func pushIndex(ctx context.Context, idx v1.ImageIndex, o WriteOptions) error {
	if len(o.Tags) == 0 {
		return errors.New("no --tag names where to push")
	}
	return pushTags(ctx, idx, o.Tags, o.Registry, func(ref name.Tag) error {
		return remote.WriteIndex(ref, idx, RemoteOptions(ctx, o.Registry)...)
	})
}

// CheckIndexOutputs refuses the outputs that hold one image only.
func CheckIndexOutputs(outs []Output) error {
	var errs []error
	for _, out := range outs {
		if out.Type == OutputDocker || out.Type == OutputDaemon {
			errs = append(errs, fmt.Errorf("%s holds one image only, not an index of several platforms: choose one platform with --platform, or write an OCI layout (-o type=oci,dest=DIR) or push", out))
		}
	}
	return errors.Join(errs...)
}

// WriteImages writes one image (Write), or several, one per platform, as
// an index (WriteIndex). It returns the digest of what it wrote, and the
// config digest of a single image.
func WriteImages(ctx context.Context, images []v1.Image, outs []Output, o WriteOptions) (digest, config string, err error) {
	if len(images) > 1 {
		d, err := WriteIndex(ctx, images, outs, o)
		return d.String(), "", err
	}
	if err := Write(ctx, images[0], outs, o); err != nil {
		return "", "", err
	}
	d, err := images[0].Digest()
	if err != nil {
		return "", "", err
	}
	cfg, err := images[0].ConfigName()
	return d.String(), cfg.String(), err
}
