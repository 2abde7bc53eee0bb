//go:build !linux

package commit

// renameNoReplace renames from to to unless to exists (then an error that
// errors.Is os.ErrExist). Not atomic here: another writer may create to
// between the check and the rename.
func renameNoReplace(from, to string) error {
	return renameIfAbsent(from, to)
}
