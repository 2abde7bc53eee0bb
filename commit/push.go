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
	pushed := map[string]bool{}
	for _, ref := range tags {
		repo := ref.Context().String()
		if pushed[repo] {
			err = remote.Tag(ref, img, RemoteOptions(ctx, o)...)
		} else {
			err = remote.Write(ref, img, RemoteOptions(ctx, o)...)
		}
		if err != nil {
			return v1.Hash{}, RegistryError(ref.String(), err)
		}
		pushed[repo] = true
	}
	return digest, nil
}
