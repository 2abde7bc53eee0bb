package recipe

// stageSource is what a Stage was decoded from, kept so that Expand can
// decode it again once the base image's env is known.
type stageSource struct{}
