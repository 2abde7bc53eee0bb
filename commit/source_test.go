package commit_test

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stratabuild/strata/commit"
)

// source turns a reference as tests write it (oci-layout://DIR[:TAG],
// docker-archive://FILE, a registry reference) into a Source. The build
// gets its sources typed from the recipe; only tests spell them.
func source(t testing.TB, ref string) commit.Source {
	t.Helper()
	switch {
	case ref == "scratch":
		return commit.Source{Kind: commit.SourceScratch}
	case strings.HasPrefix(ref, "oci-layout://") && strings.Contains(ref, "@"):
		dir, digest, _ := strings.Cut(strings.TrimPrefix(ref, "oci-layout://"), "@")
		return commit.Source{Kind: commit.SourceLayout, Path: dir, Digest: digest}
	case strings.HasPrefix(ref, "oci-layout://"):
		rest := strings.TrimPrefix(ref, "oci-layout://")
		dir, tag := rest, ""
		if i := strings.LastIndex(rest, ":"); i > strings.LastIndex(rest, "/") {
			dir, tag = rest[:i], rest[i+1:]
		}
		return commit.Source{Kind: commit.SourceLayout, Path: dir, Tag: tag}
	case strings.HasPrefix(ref, "docker-archive://"):
		return commit.Source{Kind: commit.SourceArchive, Path: strings.TrimPrefix(ref, "docker-archive://")}
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	return commit.Source{Kind: commit.SourceRegistry, Ref: r}
}

func pullRef(t testing.TB, ref string, o commit.PullOptions) (v1.Image, error) {
	t.Helper()
	return commit.Pull(t.Context(), source(t, ref), o)
}
