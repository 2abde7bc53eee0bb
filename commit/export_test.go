package commit

// ForgetVerified makes this process forget the blobs it checked, as a new
// process would.
func ForgetVerified() { verified.Clear() }
