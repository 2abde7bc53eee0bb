package commit

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// PushOptions says how Push reaches registries; see PullOptions for the
// fields.
type PushOptions struct {
	Insecure  []string
	Keychain  authn.Keychain
	Transport http.RoundTripper
}

// Push uploads img to every tag's registry. Blobs the registry already
// holds are skipped (ggcr asks with HEAD first); layers of a base pulled
// from a repository of the same registry are mounted from there instead of
// uploaded. For a second tag in a repository already pushed to only the
// manifest is put. It returns the manifest digest, the same for every tag.
func Push(ctx context.Context, img v1.Image, tags []string, o PushOptions) (v1.Hash, error) {
	if len(tags) == 0 {
		return v1.Hash{}, errors.New("pushing: no tag names a destination")
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("computing manifest digest: %w", err)
	}
	ro := registryOptions{insecure: o.Insecure, keychain: o.Keychain, transport: o.Transport}
	pushed := map[string]bool{}
	for _, t := range tags {
		ref, err := name.NewTag(t)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("pushing %s: %w", t, err)
		}
		if opts := ro.nameOptions(ref.RegistryStr()); opts != nil {
			if ref, err = name.NewTag(t, opts...); err != nil {
				return v1.Hash{}, fmt.Errorf("pushing %s: %w", t, err)
			}
		}
		repo := ref.Context().String()
		if pushed[repo] {
			err = remote.Tag(ref, img, ro.remote(ctx)...)
		} else {
			err = remote.Write(ref, img, ro.remote(ctx)...)
		}
		if err != nil {
			return v1.Hash{}, fmt.Errorf("pushing %s: %w", t, err)
		}
		pushed[repo] = true
	}
	return digest, nil
}
