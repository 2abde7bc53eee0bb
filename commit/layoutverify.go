package commit

import (
	"bytes"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// verifiedIndex is an OCI layout's index whose images and child indexes
// are checked as they are opened: a manifest's or index's bytes against
// the digest and size that name it, an image's config against its
// manifest's descriptor. go-containerregistry's layout reads
// blobs/sha256/HEX as it is, so a config rewritten in place (an Env
// with LD_PRELOAD added) would reach the steps and the image, even with
// the base pinned by digest. Layers are checked as they are read (see
// SaveBlob); a registry's manifests and configs by go-containerregistry.
type verifiedIndex struct {
	inner
	dir string
}

// inner is the layout's own index, under a name its methods do not shadow.
type inner = v1.ImageIndex

// Image opens the image h names and checks its manifest and config.
func (x verifiedIndex) Image(h v1.Hash) (v1.Image, error) {
	img, err := x.inner.Image(h)
	if err != nil {
		return nil, err
	}
	if err := x.checkManifest(img, h, "manifest"); err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	if err := x.check(cfg, m.Config.Digest, m.Config.Size, "config"); err != nil {
		return nil, err
	}
	return img, nil
}

// ImageIndex opens the index h names, checked, whose images are checked
// in turn.
func (x verifiedIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	idx, err := x.inner.ImageIndex(h)
	if err != nil {
		return nil, err
	}
	if err := x.checkManifest(idx, h, "index"); err != nil {
		return nil, err
	}
	return verifiedIndex{inner: idx, dir: x.dir}, nil
}

// checkManifest checks the manifest (or index: what) of m, which x lists
// as h.
func (x verifiedIndex) checkManifest(m interface{ RawManifest() ([]byte, error) }, h v1.Hash, what string) error {
	raw, err := m.RawManifest()
	if err != nil {
		return err
	}
	return x.check(raw, h, x.listedSize(h), what)
}

// listedSize is the size x's manifest gives the blob h, or -1 if it does
// not list h (a digest named in a recipe that a nested index lists).
func (x verifiedIndex) listedSize(h v1.Hash) int64 {
	im, err := x.IndexManifest()
	if err != nil {
		return -1
	}
	for _, d := range im.Manifests {
		if d.Digest == h {
			return d.Size
		}
	}
	return -1
}

// check returns an error unless data has digest want and size (if not
// -1) the size given.
func (x verifiedIndex) check(data []byte, want v1.Hash, size int64, what string) error {
	got, _, err := v1.SHA256(bytes.NewReader(data))
	switch {
	case err != nil:
		return err
	case want.Algorithm != "sha256":
		return fmt.Errorf("the OCI layout %s names its %s %s by a digest strata cannot check", x.dir, what, want)
	case got != want:
		return fmt.Errorf("the OCI layout %s is corrupt or was altered: the blob of its %s %s holds content of digest %s", x.dir, what, want, got)
	case size >= 0 && int64(len(data)) != size:
		return fmt.Errorf("the OCI layout %s is corrupt: its %s %s is %d bytes, where it is listed as %d", x.dir, what, want, len(data), size)
	}
	return nil
}
