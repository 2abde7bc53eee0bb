package commit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// WriteOCILayout writes img as the only image of an OCI image layout at dir,
// listed once per name in refNames (as its org.opencontainers.image.ref.name
// annotation, the TAG of "oci:DIR:TAG" in skopeo), or once unnamed. The
// layout is built in a sibling temp dir and swapped in, so a failure leaves
// an existing layout at dir as it was; an existing layout is replaced as a
// whole, not added to.
func WriteOCILayout(ctx context.Context, dir string, img v1.Image, refNames []string) error {
	dir = filepath.Clean(dir)
	err := replaceDir(dir, func(tmp string) error {
		p, err := layout.Write(tmp, empty.Index)
		if err != nil {
			return err
		}
		linkBlobs(img, tmp)
		if err := p.WriteImage(ctxImage(ctx, img)); err != nil {
			return err
		}
		desc, err := descriptor(img)
		if err != nil {
			return err
		}
		if len(refNames) == 0 {
			return p.AppendDescriptor(desc)
		}
		for _, r := range refNames {
			d := desc
			d.Annotations = map[string]string{ocispec.AnnotationRefName: r}
			if err := p.AppendDescriptor(d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	return nil
}

// descriptor describes img for an index.
func descriptor(img v1.Image) (v1.Descriptor, error) {
	mt, err := img.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	d, err := img.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	size, err := img.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	desc := v1.Descriptor{MediaType: mt, Digest: d, Size: size}
	if cf, err := img.ConfigFile(); err == nil {
		desc.Platform = cf.Platform()
	}
	return desc, nil
}

// WriteDockerArchive writes img as a `docker save` tarball named by tags
// (none: an untagged image). It is written to a temp file beside file and
// renamed, so a failure leaves an existing file as it was.
func WriteDockerArchive(ctx context.Context, file string, img v1.Image, tags []string) error {
	refs, err := archiveRefs(ctxImage(ctx, img), tags)
	if err != nil {
		return err
	}
	if err := replaceFile(file, func(f *os.File) error {
		return tarball.MultiRefWrite(refs, f)
	}); err != nil {
		return fmt.Errorf("writing docker archive %s: %w", file, err)
	}
	return nil
}

// archiveRefs maps every tag to img. Without tags img is keyed by a digest
// reference, which ggcr writes with no RepoTags.
func archiveRefs(img v1.Image, tags []string) (map[name.Reference]v1.Image, error) {
	refs := map[name.Reference]v1.Image{}
	for _, t := range tags {
		tag, err := name.NewTag(t)
		if err != nil {
			return nil, fmt.Errorf("tag %q: %w", t, err)
		}
		refs[tag] = img
	}
	if len(refs) == 0 {
		d, err := img.Digest()
		if err != nil {
			return nil, err
		}
		ref, err := name.NewDigest("untagged@" + d.String())
		if err != nil {
			return nil, err
		}
		refs[ref] = img
	}
	return refs, nil
}

// replaceFile writes file through write on a temp file in the same
// directory, syncs it and renames it over file.
func replaceFile(file string, write func(*os.File) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), file)
}

// replaceDir builds a new directory through build in a temp dir beside dir
// and swaps it in for dir; the old one is removed afterwards.
func replaceDir(dir string, build func(tmp string) error) (err error) {
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if rerr := os.RemoveAll(tmp); rerr != nil && err == nil {
			err = rerr
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := build(tmp); err != nil {
		return err
	}
	// After the swap tmp holds the old layout (or nothing), removed above.
	return swapDir(tmp, dir)
}

var errNotDir = errors.New("exists and is not a directory")
