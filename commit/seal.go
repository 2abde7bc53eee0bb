package commit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// sealTime is the mtime of a blob under the state root that strata wrote
// and checked. A layout output shares its blobs' inodes with the state
// root (linkBlobs): a program that writes into an output's blob in place
// (dd conv=notrunc, an editor, rsync --inplace of other content) changes
// the state root's too, and moves its mtime. A blob whose mtime is not
// sealTime is hashed before it goes into an output (checkSealed), so a
// changed one is never handed on under its digest. chmod and chown of an
// output change no content, nor the mtime.
var sealTime = time.Unix(0, 0)

// seal gives the blob file path, whose content was checked as it was
// written, the mtime of a checked blob: call it before naming the blob.
func seal(path string) error {
	return os.Chtimes(path, sealTime, sealTime)
}

// checkSealed returns nil if the blob at path is sealed, or holds the
// content of digest (a blob an older strata wrote, or one touched), which
// it then seals. A blob that does not is removed from the state root,
// with an error saying what happened: the next build makes or fetches it
// again.
func checkSealed(path string, digest v1.Hash) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.ModTime().Equal(sealTime) {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	got, _, err := v1.SHA256(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("checking blob %s: %w", path, err)
	}
	if got != digest {
		rerr := os.Remove(path)
		if errors.Is(rerr, fs.ErrNotExist) {
			rerr = nil
		}
		return errors.Join(fmt.Errorf("blob %s under the state root was changed after strata wrote it (it holds %s): an OCI layout output shares its files with the state root, so something may have written into one; strata removed the blob: build again, and it is made or fetched anew", digest, got), rerr)
	}
	return seal(path)
}
