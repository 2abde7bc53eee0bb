package commit

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Push uploads img to every tag's registry. Blobs the registry already
// holds are skipped (ggcr asks with HEAD first); layers of a base pulled
// from a repository of the same registry are mounted from there instead of
// uploaded. For a second tag in a repository already pushed to only the
// manifest is put. It returns the manifest digest, the same for every tag.
func Push(ctx context.Context, img v1.Image, tags []name.Tag, o RegistryOptions) (v1.Hash, error) {
	if len(tags) == 0 {
		return v1.Hash{}, errors.New("pushing: no tag names a destination")
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("computing manifest digest: %w", err)
	}
	err = pushTags(ctx, img, tags, o, func(ref name.Tag) error {
		return remote.Write(ref, img, RemoteOptions(ctx, o)...)
	})
	if err != nil {
		return v1.Hash{}, err
	}
	return digest, nil
}

// pushTags puts t to every tag: with write the first time a repository
// is named, as a manifest only (remote.Tag) for another tag of it.
func pushTags(ctx context.Context, t remote.Taggable, tags []name.Tag, o RegistryOptions, write func(name.Tag) error) error {
	pushed := map[string]bool{}
	for _, ref := range tags {
		var err error
		if repo := ref.Context().String(); pushed[repo] {
			err = remote.Tag(ref, t, RemoteOptions(ctx, o)...)
		} else {
			err = write(ref)
			pushed[repo] = true
		}
		if err != nil {
			return RegistryError(ref.String(), err)
		}
	}
	return nil
}

// tagNames are tags as strings.
func tagNames(tags []name.Tag) []string {
	out := make([]string, len(tags))
	for i, t := range tags {
		out[i] = t.String()
	}
	return out
}
