package commit

import "time"

// ForgetVerified makes this process forget the blobs it checked, as a new
// process would.
func ForgetVerified() { verified.Clear() }

// SetFetchBackoff makes a lost blob fetch start again after d, not a
// second, until the test ends.
func SetFetchBackoff(t interface{ Cleanup(func()) }, d time.Duration) {
	saved := fetchBackoff
	fetchBackoff = d
	t.Cleanup(func() { fetchBackoff = saved })
}

// DefaultCertDirs are the certificate directories of a process running
// as euid with the given XDG_CONFIG_HOME and HOME.
func DefaultCertDirs(euid int, configHome, home string) []string {
	return defaultCertDirs(euid, configHome, home)
}
