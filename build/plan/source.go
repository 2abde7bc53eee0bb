package plan

import (
	"fmt"

	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/recipe"
)

// Source is the typed source a recipe's image reference names.
func Source(b recipe.Base, o commit.RegistryOptions) (commit.Source, error) {
	switch b.Kind {
	case recipe.KindScratch:
		return commit.Source{Kind: commit.SourceScratch}, nil
	case recipe.KindOCILayout:
		return commit.Source{Kind: commit.SourceLayout, Path: b.Path, Tag: b.Tag, Digest: b.Digest}, nil
	case recipe.KindDockerArchive:
		return commit.Source{Kind: commit.SourceArchive, Path: b.Path}, nil
	case recipe.KindRegistry:
		ref, err := commit.ParseReference(b.Ref, o)
		if err != nil {
			return commit.Source{}, err
		}
		return commit.Source{Kind: commit.SourceRegistry, Ref: ref}, nil
	}
	return commit.Source{}, fmt.Errorf("%s is a stage, not an image", b.Ref)
}
