package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/stratabuild/strata/build/cache"
	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/inputfile"
	"github.com/stratabuild/strata/internal/stateroot"
)

// splitSpec splits "k=v,k=v" into pairs, rejecting repeated and empty keys.
func splitSpec(spec, what string) (map[string]string, error) {
	kv := map[string]string{}
	if strings.TrimSpace(spec) == "" {
		return nil, fmt.Errorf("empty %s", what)
	}
	for _, part := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("bad %s %q: %q is not KEY=VALUE", what, spec, part)
		}
		if _, dup := kv[k]; dup {
			return nil, fmt.Errorf("bad %s %q: %s given twice", what, spec, k)
		}
		kv[k] = v
	}
	return kv, nil
}

// parseOutput parses an -o/--output value: "type=oci,dest=DIR",
// "type=docker,dest=FILE" or "type=registry".
func parseOutput(spec string) (commit.Output, error) {
	const want = "want type=oci,dest=DIR | type=docker,dest=FILE | type=registry"
	if !strings.Contains(spec, "=") && spec != "" {
		return commit.Output{}, fmt.Errorf("bad output %q: %s", spec, want)
	}
	kv, err := splitSpec(spec, "output")
	if err != nil {
		return commit.Output{}, fmt.Errorf("%w (%s)", err, want)
	}
	var o commit.Output
	for k, v := range kv {
		switch k {
		case "type":
			o.Type = commit.OutputType(v)
		case "dest":
			o.Dest = v
		default:
			return commit.Output{}, fmt.Errorf("bad output %q: unknown key %q (%s)", spec, k, want)
		}
	}
	switch o.Type {
	case commit.OutputOCI, commit.OutputDocker:
		if o.Dest == "" {
			return commit.Output{}, fmt.Errorf("bad output %q: type=%s needs dest=%s", spec, o.Type, map[commit.OutputType]string{commit.OutputOCI: "DIR", commit.OutputDocker: "FILE"}[o.Type])
		}
	case commit.OutputRegistry:
		if _, ok := kv["dest"]; ok {
			return commit.Output{}, fmt.Errorf("bad output %q: type=registry takes no dest (it pushes every --tag)", spec)
		}
	case "":
		return commit.Output{}, fmt.Errorf("bad output %q: missing type= (%s)", spec, want)
	default:
		return commit.Output{}, fmt.Errorf("bad output %q: unknown type %q (%s)", spec, o.Type, want)
	}
	return o, nil
}

// secret is one --secret: the content of a secret mount with ID, read
// from the file Src or the environment variable Env (exactly one is set).
type secret struct {
	ID, Src, Env string
}

// parseSecret parses a --secret value: "id=ID,src=FILE" or "id=ID,env=VAR"
// (source= is accepted for src=, as docker does).
func parseSecret(spec string) (secret, error) {
	const want = "want id=ID,src=FILE | id=ID,env=VAR"
	kv, err := splitSpec(spec, "secret")
	if err != nil {
		return secret{}, fmt.Errorf("%w (%s)", err, want)
	}
	var s secret
	for k, v := range kv {
		switch k {
		case "id":
			s.ID = v
		case "src", "source":
			if s.Src != "" {
				return secret{}, fmt.Errorf("bad secret %q: src and source given both", spec)
			}
			s.Src = v
		case "env":
			s.Env = v
		default:
			return secret{}, fmt.Errorf("bad secret %q: unknown key %q (%s)", spec, k, want)
		}
	}
	switch {
	case s.ID == "":
		return secret{}, fmt.Errorf("bad secret %q: missing id= (%s)", spec, want)
	case s.Src == "" && s.Env == "":
		return secret{}, fmt.Errorf("bad secret %q: missing src= or env= (%s)", spec, want)
	case s.Src != "" && s.Env != "":
		return secret{}, fmt.Errorf("bad secret %q: give src= or env=, not both", spec)
	}
	return s, nil
}

// maxSecret bounds a secret's size; BuildKit's is 500 KiB too.
const maxSecret = 500 << 10

// read returns the secret's content.
func (s secret) read() ([]byte, error) {
	if s.Env != "" {
		v, ok := os.LookupEnv(s.Env)
		if !ok {
			return nil, fmt.Errorf("secret %q: environment variable %s is not set", s.ID, s.Env)
		}
		return []byte(v), nil
	}
	return inputfile.Read(s.Src, inputfile.Options{Max: maxSecret, What: fmt.Sprintf("secret %q source", s.ID)})
}

// parseCacheRef parses a --cache-from/--cache-to registry cache,
// REGISTRY/REPOSITORY[:TAG]; TAG prefixes the entries' tags, so that one
// repository can hold several caches.
func parseCacheRef(ref string, reg commit.RegistryOptions) (*cache.Registry, error) {
	repo, prefix := ref, ""
	if t, err := name.NewTag(ref, name.StrictValidation); err == nil {
		repo, prefix = t.Context().Name(), t.TagStr()
	}
	r, err := commit.ParseRepository(repo, reg)
	if err != nil {
		return nil, fmt.Errorf("bad reference %q: want [REGISTRY/]REPOSITORY[:TAG], lowercase", ref)
	}
	return &cache.Registry{Repo: r, Prefix: prefix, Options: reg}, nil
}

// defaultRoot is the state directory used without --root (see
// stateroot.DefaultDir: $STRATA_ROOT, /var/lib/strata as root, else
// $XDG_DATA_HOME/strata).
func defaultRoot() string { return stateroot.DefaultDir() }
