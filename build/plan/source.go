package plan

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/recipe"
)

// Source is the typed source a recipe's image reference names.
func Source(b recipe.Base, o commit.RegistryOptions) (commit.Source, error) {
	switch b.Kind {
	case recipe.KindScratch:
		return commit.Source{Kind: commit.SourceScratch}, nil
	case recipe.KindOCILayout:
		dir, tag := layoutDir(b.Path, b.Tag)
		return commit.Source{Kind: commit.SourceLayout, Path: dir, Tag: tag, Digest: b.Digest}, nil
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

// layoutDir splits DIR:NAME:TAG the way the files say: oci-layout://D:m:1
// is the image named "m:1" in the layout D (strata names layout images by
// their full --tag, and so does skopeo: D:example.com/org/app:1) when
// D:m is no layout and D is. The grammar alone splits at the last ":";
// the last ":" before which there is a layout wins.
func layoutDir(dir, tag string) (string, string) {
	if tag == "" || isLayout(dir) {
		return dir, tag
	}
	for i := strings.LastIndexByte(dir, ':'); i > 0; i = strings.LastIndexByte(dir[:i], ':') {
		if isLayout(dir[:i]) {
			return dir[:i], dir[i+1:] + ":" + tag
		}
	}
	return dir, tag
}

func isLayout(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "index.json"))
	return err == nil
}
