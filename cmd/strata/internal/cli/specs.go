package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
// "type=docker,dest=FILE" or "type=registry". buildx's tar=false (an OCI
// layout directory, which strata always writes) is accepted with
// type=oci; a dest ending in .tar without it is refused, as buildx
// writes a tarball there.
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
		case "tar": // below, once the type is known
		default:
			return commit.Output{}, fmt.Errorf("bad output %q: unknown key %q (%s)", spec, k, want)
		}
	}
	tar, tarGiven := kv["tar"]
	if tarGiven && (o.Type != commit.OutputOCI || tar != "false") {
		return commit.Output{}, fmt.Errorf("bad output %q: strata writes an OCI layout as a directory: tar=false with type=oci, or no tar= (for a tarball, type=docker,dest=FILE)", spec)
	}
	if o.Type == commit.OutputOCI && !tarGiven && strings.HasSuffix(strings.TrimSuffix(o.Dest, "/"), ".tar") {
		return commit.Output{}, fmt.Errorf("bad output %q: strata writes an OCI layout directory at dest, where buildx writes a tarball: name a directory (add tar=false to use this name), or give type=docker,dest=FILE for a tarball", spec)
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
	const want = "want id=ID,src=FILE | id=ID,env=VAR | id=ID"
	kv, err := splitSpec(spec, "secret")
	if err != nil {
		return secret{}, fmt.Errorf("%w (%s)", err, want)
	}
	var s secret
	var typ string
	for k, v := range kv {
		switch k {
		case "type":
			if v != "file" && v != "env" {
				return secret{}, fmt.Errorf("bad secret %q: type=%s: want type=file or type=env", spec, v)
			}
			typ = v
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
	if typ == "env" && s.Env == "" {
		s.Env, s.Src = s.Src, "" // type=env,src=VAR, as buildx
	}
	switch {
	case s.ID == "":
		return secret{}, fmt.Errorf("bad secret %q: missing id= (%s)", spec, want)
	case s.Src != "" && s.Env != "":
		return secret{}, fmt.Errorf("bad secret %q: give src= or env=, not both", spec)
	case s.Src == "" && s.Env == "":
		// As buildx (BuildKit's secrets provider): the environment
		// variable named as the id if it is set, else the file.
		if _, ok := os.LookupEnv(s.ID); ok && typ != "file" {
			s.Env = s.ID
		} else {
			s.Src = s.ID
		}
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
	data, err := inputfile.Read(s.Src, inputfile.Options{Max: maxSecret, What: fmt.Sprintf("secret %q source", s.ID)})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("secret %q: its source %s does not exist", s.ID, s.Src)
	}
	return data, err
}

// parseCache parses a --cache-from (from) or --cache-to value: a registry
// REF, the shorthand, or buildx's forms type=registry,ref=REF[,mode=…] and
// type=local,src=DIR (--cache-from) / type=local,dest=DIR (--cache-to).
// mode=min|max is accepted as buildx has it; strata records every step
// whatever it says (what buildx calls max).
func parseCache(spec string, from bool, reg commit.RegistryOptions) (cache.Store, error) {
	dirKey, want := "dest", "want REF | type=registry,ref=REF[,mode=min|max] | type=local,dest=DIR[,mode=min|max]"
	if from {
		dirKey, want = "src", "want REF | type=registry,ref=REF | type=local,src=DIR"
	}
	if !strings.Contains(spec, "=") {
		return parseCacheRef(spec, reg)
	}
	kv, err := splitSpec(spec, "cache")
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, want)
	}
	typ := kv["type"]
	where, known := map[string]string{"registry": "ref", "local": dirKey}[typ]
	switch {
	case typ == "":
		return nil, fmt.Errorf("bad cache %q: missing type= (%s)", spec, want)
	case !known:
		return nil, fmt.Errorf("bad cache %q: unknown type %q (%s)", spec, typ, want)
	}
	for k, v := range kv {
		switch {
		case k == "type" || k == where:
		case k == "mode" && from:
			return nil, fmt.Errorf("bad cache %q: mode= is a --cache-to setting", spec)
		case k == "mode" && v != "min" && v != "max":
			return nil, fmt.Errorf("bad cache %q: mode=%s: want min or max", spec, v)
		case k != "mode":
			return nil, fmt.Errorf("bad cache %q: unknown key %q for type=%s (%s)", spec, k, typ, want)
		}
	}
	if kv[where] == "" {
		value := "DIR"
		if where == "ref" {
			value = "REF"
		}
		return nil, fmt.Errorf("bad cache %q: type=%s needs %s=%s", spec, typ, where, value)
	}
	if typ == "registry" {
		return parseCacheRef(kv["ref"], reg)
	}
	dir, err := filepath.Abs(kv[where])
	if err != nil {
		return nil, err
	}
	return &cache.Dir{Path: dir}, nil
}

// parseCacheRef parses a registry cache, REGISTRY/REPOSITORY[:TAG]; TAG
// prefixes the entries' tags, so that one repository can hold several
// caches.
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

// parseLabels parses --label K=V values, as docker does: K alone is an
// empty value, and a later K wins.
func parseLabels(specs []string) (map[string]string, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, s := range specs {
		k, v, _ := strings.Cut(s, "=")
		if strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--label: bad value %q: want KEY=VALUE", s)
		}
		out[k] = v
	}
	return out, nil
}

// parseAnnotations parses --annotation K=V values for the image manifest,
// buildx's "manifest:K=V" too. buildx's other targets (index,
// manifest-descriptor, index-descriptor) are refused: strata writes one
// manifest and no index.
func parseAnnotations(specs []string) (map[string]string, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, s := range specs {
		k, v, ok := strings.Cut(s, "=")
		if target, key, typed := strings.Cut(k, ":"); typed {
			if target != "manifest" {
				return nil, fmt.Errorf("--annotation %s: strata annotates the image manifest only (want KEY=VALUE or manifest:KEY=VALUE)", s)
			}
			k = key
		}
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--annotation: bad value %q: want KEY=VALUE", s)
		}
		out[k] = v
	}
	return out, nil
}

// defaultRoot is the state directory used without --root (see
// stateroot.DefaultDir: $STRATA_ROOT, /var/lib/strata as root, else
// $XDG_DATA_HOME/strata).
func defaultRoot() string { return stateroot.DefaultDir() }
