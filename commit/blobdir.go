package commit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stratabuild/strata/internal/owner"
)

// A blob dir (the state root's, see SaveBlob and WriteLayer) holds:
//
//	<hex>                       a blob, named by its digest; only ever
//	                            renamed into place whole and checked
//	<hex>.diffid                the diffID its content was found to have
//	                            when it was checked
//	.KIND.tmp-OWNER-RANDOM      a blob being written by process OWNER
//	                            (owner.ID: its pid, and pid namespace)
//
// The .diffid record spares every later process decompressing a base
// layer's blob again to check the diffID an image claims for it.

// DiffIDSuffix ends the name of a blob's diffID record, beside the blob.
const DiffIDSuffix = ".diffid"

// verified remembers the blobs in a blob dir whose diffID this process
// checked or read from their record, by path: a blob is immutable.
var verified sync.Map // path → v1.Hash (diffID)

// knownDiffID is the diffID of the blob at path, if this process checked
// it or a record beside it says.
func knownDiffID(path string) (v1.Hash, bool) {
	if d, ok := verified.Load(path); ok {
		return d.(v1.Hash), true
	}
	d, ok := recordedDiffID(path)
	if ok {
		verified.Store(path, d)
	}
	return d, ok
}

// recordDiffID remembers that the blob at path has diffID, in this
// process and in a record beside it (written whole or not at all; a
// failure only costs a later process a check).
func recordDiffID(path string, diffID v1.Hash) {
	verified.Store(path, diffID)
	if d, ok := recordedDiffID(path); ok && d == diffID {
		return
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, blobTempPattern("diffid"))
	if err != nil {
		return
	}
	_, err = tmp.WriteString(diffID.String() + "\n")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path+DiffIDSuffix)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
}

// recordedDiffID reads the record of the blob at path.
func recordedDiffID(path string) (v1.Hash, bool) {
	data, err := os.ReadFile(path + DiffIDSuffix)
	if err != nil {
		return v1.Hash{}, false
	}
	d, err := v1.NewHash(strings.TrimSpace(string(data)))
	return d, err == nil
}

// naming holds, by path, the blobs this process is syncing and naming in
// the background (see StreamLayer): whoever opens a blob by its path
// (OpenLayer, a Layer's readers) first waits until its naming ends.
var naming sync.Map // path → *pendingName

// namingErrs are the errors of background namings since WaitNamed last
// returned them.
var namingErrs struct {
	mu   sync.Mutex
	errs []error
}

type pendingName struct {
	done chan struct{}
	err  error
}

// nameInBackground runs name, which syncs the blob at path's temp and
// renames it to path, in its own goroutine.
func nameInBackground(path string, name func() error) {
	p := &pendingName{done: make(chan struct{})}
	naming.Store(path, p)
	go func() {
		p.err = name()
		if p.err != nil {
			namingErrs.mu.Lock()
			namingErrs.errs = append(namingErrs.errs, p.err)
			namingErrs.mu.Unlock()
		}
		naming.CompareAndDelete(path, p) // not a later naming of the same path
		close(p.done)
	}()
}

// awaitNaming waits until the blob at path, if this process is naming it
// in the background, is named or has failed to be (then there is no blob
// at path, and its error is returned).
func awaitNaming(path string) error {
	if v, ok := naming.Load(path); ok {
		p := v.(*pendingName)
		<-p.done
		return p.err
	}
	return nil
}

// WaitNamed waits until the blobs this process is naming in the
// background are named, and returns the errors of those that could not
// be since the last call: such a blob is not in its dir, and whoever
// needs it fetches it again. A build calls it before it exits.
func WaitNamed() error {
	naming.Range(func(_, v any) bool {
		<-v.(*pendingName).done
		return true
	})
	namingErrs.mu.Lock()
	defer namingErrs.mu.Unlock()
	err := errors.Join(namingErrs.errs...)
	namingErrs.errs = nil
	return err
}

// blobTempPattern is the os.CreateTemp pattern of a temp in a blob dir:
// .KIND.tmp-OWNER-RANDOM, which CleanBlobTemps can tell.
func blobTempPattern(kind string) string {
	return "." + kind + ".tmp-" + owner.ID() + "-*"
}

// CleanBlobTemps removes the temps in the blob dir dir that processes no
// longer alive left: blobs they were fetching or compressing when they
// were killed. No blob named by its digest is ever partly written, so
// nothing else needs removing.
func CleanBlobTemps(dir string) error {
	return cleanTemps(dir, "")
}
