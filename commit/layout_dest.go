package commit

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/stratabuild/strata/internal/inputfile"
)

// destKind is what an OCI layout destination holds.
type destKind int

const (
	destMissing destKind = iota // nothing: create it, and its parents
	destEmpty                   // an empty directory: write a layout into it
	destLayout                  // an OCI layout: add to it
)

// Bounds on the files of an existing layout that are read.
const (
	maxLayoutFile = 64 << 10
	maxIndexFile  = 64 << 20
)

// CheckOCIDest returns an error unless an OCI layout can be written at
// dir: dir is missing (its nearest existing ancestor a writable
// directory), an empty directory, or an OCI layout to add to. A file, or
// a directory that holds anything and is not a layout (a build context, a
// home directory), is refused: nothing of it would be touched. It writes
// nothing; call it before a build to fail early.
func CheckOCIDest(dir string) error {
	_, err := inspectDest(filepath.Clean(dir))
	return err
}

// inspectDest says what dir holds, or why no layout may be written there.
func inspectDest(dir string) (destKind, error) {
	fi, err := os.Stat(dir)
	switch {
	case absent(err):
		if _, lerr := os.Lstat(dir); lerr == nil {
			return 0, fmt.Errorf("%s is a symbolic link to a missing directory; remove it or choose another directory", dir)
		}
		return destMissing, creatable(dir)
	case err != nil:
		return 0, err
	case !fi.IsDir():
		return 0, fmt.Errorf("%s is %s, not a directory; choose an empty or new directory, or an existing layout to add to", dir, inputfile.Kind(fi.Mode()))
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	has := map[string]bool{}
	for _, e := range entries {
		if !tempRe.MatchString(e.Name()) {
			has[e.Name()] = true
		}
	}
	switch {
	case len(has) == 0:
		return destEmpty, WritableDir(dir)
	case !has["oci-layout"]:
		return 0, fmt.Errorf("%s is not empty and is not an OCI layout; choose an empty or new directory, or an existing layout to add to", dir)
	}
	if err := checkLayoutFile(dir); err != nil {
		return 0, err
	}
	if has["index.json"] {
		if _, err := readIndex(dir); err != nil {
			return 0, err
		}
	} else if len(has) > 2 || len(has) == 2 && !has["blobs"] {
		// Only oci-layout and blobs/ is what an interrupted first write
		// leaves; anything more is a layout someone broke.
		return 0, fmt.Errorf("%s has an oci-layout file but no index.json; restore its index.json, or choose another directory", dir)
	}
	return destLayout, WritableDir(dir)
}

// checkLayoutFile checks the oci-layout file of dir.
func checkLayoutFile(dir string) error {
	path := filepath.Join(dir, "oci-layout")
	data, err := inputfile.Read(path, inputfile.Options{Max: maxLayoutFile, What: "OCI layout file"})
	if err != nil {
		return err
	}
	var l struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := json.Unmarshal(data, &l); err != nil || l.Version == "" {
		return fmt.Errorf("%s is not an OCI layout file (want {\"imageLayoutVersion\": \"1.0.0\"}); choose another directory", path)
	}
	return nil
}

// renameIfAbsent renames from to to unless to exists, checking first.
func renameIfAbsent(from, to string) error {
	if _, err := os.Lstat(to); err == nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: syscall.EEXIST}
	}
	return os.Rename(from, to)
}
