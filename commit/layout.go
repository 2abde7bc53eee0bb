package commit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// layoutFile is the oci-layout file of a layout strata creates.
const layoutFile = `{"imageLayoutVersion": "1.0.0"}` + "\n"

// WriteOCILayout adds img to the OCI image layout at dir, listed once per
// name in refNames (as its org.opencontainers.image.ref.name annotation,
// the TAG of "oci:DIR:TAG" in skopeo), or once unnamed. As buildx and
// skopeo do, it adds to what is there:
//
//   - dir missing: the layout is built in a temp dir beside it and renamed
//     into place (missing parents are created), so a failure leaves nothing;
//   - dir an empty directory: a layout is written into it;
//   - dir an OCI layout: img's blobs are added (a blob already there is
//     kept) and index.json is replaced in one rename, keeping every other
//     image; an image listed under one of refNames loses that name;
//   - anything else (a file, a directory holding other files): refused
//     before anything is written, as CheckOCIDest says.
//
// Writers of one layout are serialised by a flock on the layout
// directory, so concurrent builds writing to it all land. Files are
// written 0644, directories created 0755. Temps left by killed writers
// are removed first (CleanStaleTemps).
func WriteOCILayout(ctx context.Context, dir string, img v1.Image, refNames []string) error {
	dir = filepath.Clean(dir)
	if err := writeOCILayout(ctx, dir, imageEntry(img), refNames); err != nil {
		return fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	return nil
}

// WriteOCILayoutIndex is WriteOCILayout for an image index: its images'
// blobs and its own manifest are written, and index.json lists the index
// under refNames.
func WriteOCILayoutIndex(ctx context.Context, dir string, idx v1.ImageIndex, refNames []string) error {
	dir = filepath.Clean(dir)
	if err := writeOCILayout(ctx, dir, indexEntry(idx), refNames); err != nil {
		return fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	return nil
}

// layoutEntry is what index.json lists: an image or an index, with how
// to write its blobs.
type layoutEntry struct {
	descriptor func() (v1.Descriptor, error)
	writeBlobs func(ctx context.Context, dir string) error
}

func imageEntry(img v1.Image) layoutEntry {
	return layoutEntry{
		descriptor: func() (v1.Descriptor, error) { return descriptor(img) },
		writeBlobs: func(ctx context.Context, dir string) error { return writeBlobs(ctx, dir, img) },
	}
}

func indexEntry(idx v1.ImageIndex) layoutEntry {
	return layoutEntry{
		descriptor: func() (v1.Descriptor, error) {
			mt, err := idx.MediaType()
			if err != nil {
				return v1.Descriptor{}, err
			}
			d, err := idx.Digest()
			if err != nil {
				return v1.Descriptor{}, err
			}
			size, err := idx.Size()
			return v1.Descriptor{MediaType: mt, Digest: d, Size: size}, err
		},
		writeBlobs: func(ctx context.Context, dir string) error {
			m, err := idx.IndexManifest()
			if err != nil {
				return err
			}
			for _, desc := range m.Manifests {
				img, err := idx.Image(desc.Digest)
				if err != nil {
					return err
				}
				if err := writeBlobs(ctx, dir, img); err != nil {
					return err
				}
			}
			raw, err := idx.RawManifest()
			if err != nil {
				return err
			}
			d, err := idx.Digest()
			if err != nil {
				return err
			}
			blobs := filepath.Join(dir, "blobs", "sha256")
			if err := putBytes(blobs, d, raw); err != nil {
				return err
			}
			return syncDir(blobs)
		},
	}
}

func writeOCILayout(ctx context.Context, dir string, img layoutEntry, refNames []string) error {
	_ = CleanStaleTemps(dir) // best effort: a temp left is no reason to fail
	kind, err := inspectDest(dir)
	if err != nil {
		return err
	}
	if kind == destMissing {
		created, err := createLayout(ctx, dir, img, refNames)
		if err != nil || created {
			return err
		}
		// Another writer made dir meanwhile: add to it like to any other.
	}
	unlock, err := lockDir(ctx, dir)
	if err != nil {
		return err
	}
	defer unlock()
	// Under the lock, look again: dir may have changed since.
	if kind, err = inspectDest(dir); err != nil {
		return err
	}
	if kind != destEmpty {
		return addImage(ctx, dir, img, refNames)
	}
	// Made durable by the sync of dir after index.json.
	err = writeLayoutFile(dir)
	if err == nil {
		err = addImage(ctx, dir, img, refNames)
	}
	if _, serr := os.Lstat(filepath.Join(dir, "index.json")); err != nil && absent(serr) {
		// A first write into an empty dir that fails (a ^C) leaves it
		// empty, as one into a new dir leaves nothing: all in it is this
		// write's, under the lock.
		emptyDir(dir)
	}
	return err
}

// emptyDir removes what dir holds, as far as it can.
func emptyDir(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// createLayout builds a layout holding img in a temp dir beside dir and
// renames it to dir. created is false, with no error, if dir appeared in
// the meantime.
func createLayout(ctx context.Context, dir string, img layoutEntry, refNames []string) (created bool, err error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return false, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), tempPattern(dir))
	if err != nil {
		return false, err
	}
	defer func() {
		if rerr := os.RemoveAll(tmp); rerr != nil && err == nil {
			err = rerr
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return false, err
	}
	if err := writeLayoutFile(tmp); err != nil { // synced with index.json
		return false, err
	}
	if err := addImage(ctx, tmp, img, refNames); err != nil {
		return false, err
	}
	err = renameNoReplace(tmp, dir)
	if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, syncDir(filepath.Dir(dir))
}

// writeLayoutFile writes dir's oci-layout file, leaving the sync of dir
// to the index.json written after it.
func writeLayoutFile(dir string) error {
	return renameSynced(filepath.Join(dir, "oci-layout"), func(f *os.File) error {
		_, err := f.WriteString(layoutFile)
		return err
	})
}

// addImage writes img's blobs into the layout at dir, then lists it in
// index.json. The caller holds the layout's lock, or owns dir.
func addImage(ctx context.Context, dir string, img layoutEntry, refNames []string) error {
	desc, err := img.descriptor()
	if err != nil {
		return err
	}
	ix, err := readIndex(dir)
	if err != nil {
		return err
	}
	if err := img.writeBlobs(ctx, dir); err != nil {
		return err
	}
	if err := ix.add(desc, refNames); err != nil {
		return err
	}
	return ix.write(dir)
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

// blobParallelism is how many layer blobs are written at once (each may
// be fetched from a registry).
const blobParallelism = 4

// writeBlobs writes img's layers, config and manifest into the layout's
// blobs/sha256, skipping those already there; it syncs the directory
// before returning, so that index.json never lists a blob a crash lost.
func writeBlobs(ctx context.Context, dir string, img v1.Image) error {
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := mkdirs(blobs); err != nil {
		return err
	}
	if err := linkBlobs(img, dir); err != nil { // local layers: hardlinks from the state root
		return err
	}
	layers, err := ctxImage(ctx, img).Layers()
	if err != nil {
		return err
	}
	errs := make([]error, len(layers))
	sem := make(chan struct{}, blobParallelism)
	var wg sync.WaitGroup
	for i, l := range layers {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = putLayer(blobs, l)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	if err := putBytes(blobs, cfgName, cfg); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	manifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	if err := putBytes(blobs, d, manifest); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return syncDir(blobs)
}

// mkdirs creates dir and its missing parents, 0755 whatever the umask.
func mkdirs(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	if err := mkdirs(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return os.Chmod(dir, 0o755)
}

// putLayer writes l's compressed blob.
func putLayer(blobs string, l v1.Layer) error {
	d, err := l.Digest()
	if err != nil {
		return err
	}
	size, err := l.Size()
	if err != nil {
		return err
	}
	if err := putBlob(blobs, d, size, l.Compressed); err != nil {
		return fmt.Errorf("writing layer %s: %w", d, err)
	}
	return nil
}

// putBytes writes a blob held in memory.
func putBytes(blobs string, d v1.Hash, data []byte) error {
	return putBlob(blobs, d, int64(len(data)), func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
}

// putBlob writes the blob of digest d and size bytes, read from open,
// unless a file of that size is already there. It checks the digest as
// it writes, and renames a synced temp file into place, mode 0644; the
// caller syncs blobs once its blobs are written.
func putBlob(blobs string, d v1.Hash, size int64, open func() (io.ReadCloser, error)) error {
	if d.Algorithm != "sha256" {
		return fmt.Errorf("blob %s: only sha256 digests are supported", d)
	}
	path := filepath.Join(blobs, d.Hex)
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() && fi.Size() == size {
		return nil
	}
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	return renameSynced(path, func(f *os.File) error {
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(f, h), rc)
		if err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != d.Hex || n != size {
			return fmt.Errorf("blob %s: read %d bytes of digest sha256:%s, want %d bytes", d, n, got, size)
		}
		return nil
	})
}
