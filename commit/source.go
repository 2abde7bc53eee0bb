package commit

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
)

// SourceKind says where a base image comes from.
type SourceKind int

// The kinds of image source.
const (
	// SourceScratch is the empty image.
	SourceScratch SourceKind = iota
	// SourceRegistry is an image in a registry (Ref).
	SourceRegistry
	// SourceLayout is an image of an OCI image layout (Path, and Tag or
	// Digest to choose among its images).
	SourceLayout
	// SourceArchive is a `docker save` tarball (Path).
	SourceArchive
)

// Source is a resolved base reference: the typed form of what a recipe's
// from: names, made once (by the build's plan) and never a string again.
type Source struct {
	Kind SourceKind
	// Ref is the registry reference (SourceRegistry).
	Ref name.Reference
	// Path is the layout directory or archive file, absolute.
	Path string
	// Tag selects a layout's image by its ref name annotation (the TAG of
	// skopeo's oci:DIR:TAG); Digest selects it by manifest digest.
	Tag, Digest string
}

// String names the source as a user writes it.
func (s Source) String() string {
	switch s.Kind {
	case SourceScratch:
		return "scratch"
	case SourceRegistry:
		return s.Ref.String()
	case SourceLayout:
		switch {
		case s.Digest != "":
			return "oci-layout://" + s.Path + "@" + s.Digest
		case s.Tag != "":
			return "oci-layout://" + s.Path + ":" + s.Tag
		}
		return "oci-layout://" + s.Path
	case SourceArchive:
		return "docker-archive://" + s.Path
	}
	return fmt.Sprintf("Source(%d)", s.Kind)
}
