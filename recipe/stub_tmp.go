package recipe

import "errors"

var errNotYet = errors.New("recipe: loader not implemented yet")

// Load reads, decodes and validates the recipe at path.
func Load(path string, opts ...Option) (*Recipe, error) { return nil, errNotYet }

// Parse decodes and validates a recipe held in data; name is used in positions.
func Parse(name string, data []byte, opts ...Option) (*Recipe, error) { return nil, errNotYet }

// Stage returns the stage named name, or nil.
func (r *Recipe) Stage(name string) *Stage { return nil }

// Needed returns the stages needed to build target ("" = the last stage),
// dependencies first, target last.
func (r *Recipe) Needed(target string) ([]*Stage, error) { return nil, errNotYet }

// Expand returns a copy of s with every ${NAME} expanded, baseEnv
// (NAME=VALUE entries, as in an image config) being the base image's env.
func (s *Stage) Expand(baseEnv []string) (*Stage, error) { return nil, errNotYet }
