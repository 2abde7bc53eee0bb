package recipe

import (
	"errors"
	"maps"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// HostPlatform is the platform strata runs on.
func HostPlatform() Platform {
	p, err := ParsePlatform("linux/" + runtime.GOARCH)
	if err != nil {
		return Platform{OS: "linux", Arch: runtime.GOARCH}
	}
	return p
}

// WithTarget makes the recipe's TARGET* predefined args describe p; the
// default is the host's platform.
func WithTarget(p Platform) Option {
	return func(o *options) { o.target = p }
}

// platformArgs are the values of the predefined args, as in buildx:
// usable in ${NAME} without being declared. TARGET* describe the platform
// a build is for (one of --platform, or the host's), BUILD* the host's.
func platformArgs(target Platform) map[string]string {
	build := HostPlatform()
	if target.IsZero() {
		target = build
	}
	return map[string]string{
		"TARGETPLATFORM": target.String(), "TARGETOS": target.OS, "TARGETARCH": target.Arch, "TARGETVARIANT": target.Variant,
		"BUILDPLATFORM": build.String(), "BUILDOS": build.OS, "BUILDARCH": build.Arch,
	}
}

// PredefinedArgs are the names of the predefined args, sorted.
func PredefinedArgs() []string {
	return slices.Sorted(maps.Keys(platformArgs(Platform{})))
}

// ForPlatform loads the recipe again with its TARGET* args describing
// target: a multi-platform build plans each platform from its own copy.
func (r *Recipe) ForPlatform(target Platform) (*Recipe, error) {
	if r.src == nil {
		return nil, errNoSource
	}
	opts := append(slices.Clone(r.src.opts), WithTarget(target))
	return Parse(r.File, r.src.data, opts...)
}

// source is what a Recipe was parsed from, for ForPlatform.
type source struct {
	data []byte
	opts []Option
}

var errNoSource = errors.New("the recipe was not loaded by Load or Parse")

// platforms decodes `platforms:`, a list of os/arch[/variant], each once.
func (d *decoder) platforms(n *yaml.Node, sc *scope) []Platform {
	if n == nil {
		return nil
	}
	items, ok := d.scalarList(n, "", "platforms", true)
	if !ok {
		return nil
	}
	var out []Platform
	for _, it := range items {
		v, ok := d.str(it, sc, "", "platforms")
		if !ok {
			continue
		}
		p, err := ParsePlatform(v)
		if err != nil {
			d.errorf(it, "", "platforms: %v", err)
			continue
		}
		if slices.Contains(out, p) {
			d.errorf(it, "", "platforms: %s is listed twice", p)
			continue
		}
		out = append(out, p)
	}
	return out
}

// RelFile is the recipe's path relative to the build context, or its file
// name when it lies outside: how image history names it — never a host
// path, which would differ between checkouts.
func (r *Recipe) RelFile() string {
	ctx, err1 := filepath.Abs(r.Context)
	file, err2 := filepath.Abs(r.File)
	if err1 == nil && err2 == nil {
		if rel, err := filepath.Rel(ctx, file); err == nil && !strings.HasPrefix(rel, "..") {
			return filepath.ToSlash(rel)
		}
	}
	return filepath.Base(r.File)
}
