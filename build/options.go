package build

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// OutputType is where an image is written.
type OutputType string

// The output types of -o type=….
const (
	// OutputOCI writes an OCI image layout directory (Dest).
	OutputOCI OutputType = "oci"
	// OutputDocker writes a `docker load` tarball (Dest).
	OutputDocker OutputType = "docker"
	// OutputRegistry pushes to the registry of every tag.
	OutputRegistry OutputType = "registry"
)

// Output is one -o/--output: a type and, for files, a destination.
type Output struct {
	Type OutputType
	// Dest is the directory (oci) or file (docker); "" for registry.
	Dest string
}

// String returns the output as written on the command line, such as
// "type=oci,dest=out".
func (o Output) String() string {
	s := "type=" + string(o.Type)
	if o.Dest != "" {
		s += ",dest=" + o.Dest
	}
	return s
}

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

// ParseOutput parses an -o/--output value: "type=oci,dest=DIR",
// "type=docker,dest=FILE" or "type=registry".
func ParseOutput(spec string) (Output, error) {
	const want = "want type=oci,dest=DIR | type=docker,dest=FILE | type=registry"
	if !strings.Contains(spec, "=") && spec != "" {
		return Output{}, fmt.Errorf("bad output %q: %s", spec, want)
	}
	kv, err := splitSpec(spec, "output")
	if err != nil {
		return Output{}, fmt.Errorf("%w (%s)", err, want)
	}
	var o Output
	for k, v := range kv {
		switch k {
		case "type":
			o.Type = OutputType(v)
		case "dest":
			o.Dest = v
		default:
			return Output{}, fmt.Errorf("bad output %q: unknown key %q (%s)", spec, k, want)
		}
	}
	switch o.Type {
	case OutputOCI, OutputDocker:
		if o.Dest == "" {
			return Output{}, fmt.Errorf("bad output %q: type=%s needs dest=%s", spec, o.Type, map[OutputType]string{OutputOCI: "DIR", OutputDocker: "FILE"}[o.Type])
		}
	case OutputRegistry:
		if _, ok := kv["dest"]; ok {
			return Output{}, fmt.Errorf("bad output %q: type=registry takes no dest (it pushes every --tag)", spec)
		}
	case "":
		return Output{}, fmt.Errorf("bad output %q: missing type= (%s)", spec, want)
	default:
		return Output{}, fmt.Errorf("bad output %q: unknown type %q (%s)", spec, o.Type, want)
	}
	return o, nil
}

// Secret is one --secret: the content of a secret mount with ID, read
// from the file Src or the environment variable Env (exactly one is set).
type Secret struct {
	ID  string
	Src string
	Env string
}

// ParseSecret parses a --secret value: "id=ID,src=FILE" or "id=ID,env=VAR"
// (source= is accepted for src=, as docker does).
func ParseSecret(spec string) (Secret, error) {
	const want = "want id=ID,src=FILE | id=ID,env=VAR"
	kv, err := splitSpec(spec, "secret")
	if err != nil {
		return Secret{}, fmt.Errorf("%w (%s)", err, want)
	}
	var s Secret
	for k, v := range kv {
		switch k {
		case "id":
			s.ID = v
		case "src", "source":
			if s.Src != "" {
				return Secret{}, fmt.Errorf("bad secret %q: src and source given both", spec)
			}
			s.Src = v
		case "env":
			s.Env = v
		default:
			return Secret{}, fmt.Errorf("bad secret %q: unknown key %q (%s)", spec, k, want)
		}
	}
	switch {
	case s.ID == "":
		return Secret{}, fmt.Errorf("bad secret %q: missing id= (%s)", spec, want)
	case s.Src == "" && s.Env == "":
		return Secret{}, fmt.Errorf("bad secret %q: missing src= or env= (%s)", spec, want)
	case s.Src != "" && s.Env != "":
		return Secret{}, fmt.Errorf("bad secret %q: give src= or env=, not both", spec)
	}
	return s, nil
}

// Options are the settings of one build, as the command line gives them.
type Options struct {
	// Root is the state directory (layers, cache); see DefaultRoot.
	Root string
	// Context is the build context directory.
	Context string
	// File is the recipe path.
	File string
	// Target is the stage to build; "" for the last.
	Target string
	// Tags name the result; Push pushes each to its registry.
	Tags []string
	Push bool
	// Load loads the image into the local docker daemon.
	Load    bool
	Outputs []Output
	// BuildArgs override the recipe's args.
	BuildArgs map[string]string
	Secrets   []Secret
	// Platform is "os/arch[/variant]"; "" for the host's.
	Platform string
	// NoCache runs every step.
	NoCache bool
	// DryRun resolves everything and asks the caches, but runs nothing and
	// writes no output: Result.Plan says what a build would do.
	DryRun bool
	// CacheFrom and CacheTo are registry repositories holding a layer
	// cache, REGISTRY/REPOSITORY[:TAG]: each step's entry is tagged by its
	// key, prefixed by TAG when one is given (separate caches in one repo).
	CacheFrom []string
	CacheTo   []string
	// Compression of new layers: "gzip" (the default, also for "") or "zstd".
	Compression string
	// Progress is "auto" (the default, also for ""), "plain" or "json".
	Progress string
	// MetadataFile receives JSON about the build; "" for none.
	MetadataFile string
	// Runtime is the OCI runtime binary running the steps; "" for runc.
	Runtime string
	// InsecureRegistries are hosts reached over plain HTTP.
	InsecureRegistries []string
	// SourceDateEpoch, when set, is the time written into the image
	// (layer mtimes are clamped to it), as SOURCE_DATE_EPOCH says.
	SourceDateEpoch *time.Time
}

// Validate reports every problem of o at once, one per line.
func (o *Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, t := range o.Tags {
		if err := checkTag(t); err != nil {
			bad("--tag: %v", err)
		}
	}
	for _, r := range o.CacheFrom {
		if err := checkTag(r); err != nil {
			bad("--cache-from: %v", err)
		}
	}
	for _, r := range o.CacheTo {
		if err := checkTag(r); err != nil {
			bad("--cache-to: %v", err)
		}
	}
	if o.Push && len(o.Tags) == 0 {
		bad("--push needs at least one --tag to push to")
	}
	dests := map[string]bool{}
	for _, out := range o.Outputs {
		switch out.Type {
		case OutputRegistry:
			if len(o.Tags) == 0 {
				bad("--output type=registry needs at least one --tag to push to")
			}
		case OutputOCI, OutputDocker:
			if out.Dest == "" {
				bad("--output %s: missing dest", out)
			} else if dests[out.Dest] {
				bad("--output %s: dest %s is used twice", out, out.Dest)
			}
			dests[out.Dest] = true
		default:
			bad("--output %s: unknown type %q", out, out.Type)
		}
	}
	for k := range o.BuildArgs {
		if k == "" || strings.ContainsAny(k, "= \t\n") {
			bad("--build-arg: bad name %q", k)
		}
	}
	ids := map[string]bool{}
	for _, s := range o.Secrets {
		switch {
		case s.ID == "":
			bad("--secret: missing id")
		case ids[s.ID]:
			bad("--secret: id %s given twice", s.ID)
		case (s.Src == "") == (s.Env == ""):
			bad("--secret id=%s: give exactly one of src= and env=", s.ID)
		}
		ids[s.ID] = true
	}
	if o.Platform != "" && !platformRe.MatchString(o.Platform) {
		bad("--platform: bad value %q: want os/arch[/variant], such as linux/amd64", o.Platform)
	}
	switch o.Compression {
	case "", "gzip", "zstd":
	default:
		bad("--compression: bad value %q: want gzip or zstd", o.Compression)
	}
	switch o.Progress {
	case "", "auto", "plain", "json":
	default:
		bad("--progress: bad value %q: want auto, plain or json", o.Progress)
	}
	for _, ref := range append(append([]string(nil), o.CacheFrom...), o.CacheTo...) {
		if err := checkTag(ref); err != nil {
			bad("--cache-from/--cache-to: %v", err)
		}
	}
	for _, h := range o.InsecureRegistries {
		if !domainRe.MatchString(h) {
			bad("--insecure-registry: bad host %q: want HOST or HOST:PORT", h)
		}
	}
	return errors.Join(errs...)
}

// DefaultRoot is the state directory used without --root: /var/lib/strata
// as root, else $XDG_DATA_HOME/strata (~/.local/share/strata).
func DefaultRoot() string {
	if os.Geteuid() == 0 {
		return "/var/lib/strata"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "strata")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return filepath.Join(os.TempDir(), "strata-"+fmt.Sprint(os.Geteuid()))
	}
	return filepath.Join(home, ".local", "share", "strata")
}

// The grammar of image references (distribution/reference), so that this
// file needs the standard library only.
const (
	refComp   = `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
	refDomain = `(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?`
)

var (
	domainRe   = regexp.MustCompile(`^` + refDomain + `$`)
	repoRe     = regexp.MustCompile(`^(?:` + refDomain + `/)?` + refComp + `(?:/` + refComp + `)*$`)
	tagRe      = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)
	platformRe = regexp.MustCompile(`^[a-z0-9_]+/[a-z0-9_]+(?:/[a-z0-9_]+)?$`)
)

// checkTag checks a --tag: REPO[:TAG], where REPO may start with a registry.
func checkTag(ref string) error {
	if strings.Contains(ref, "@") {
		return fmt.Errorf("bad reference %q: a tag cannot hold a digest", ref)
	}
	repo := ref
	if i := strings.LastIndexByte(ref, ':'); i >= 0 && !strings.Contains(ref[i+1:], "/") {
		repo = ref[:i]
		if !tagRe.MatchString(ref[i+1:]) {
			return fmt.Errorf("bad reference %q: bad tag %q", ref, ref[i+1:])
		}
	}
	if err := checkRepo(repo); err != nil {
		return fmt.Errorf("bad reference %q: want [REGISTRY/]REPOSITORY[:TAG], lowercase", ref)
	}
	return nil
}

// checkRepo checks a repository name, such as registry:5000/team/app.
func checkRepo(repo string) error {
	if repo == "" {
		return errors.New("empty reference")
	}
	if len(repo) > 255 || !repoRe.MatchString(repo) {
		return fmt.Errorf("bad reference %q: want [REGISTRY/]REPOSITORY[:TAG], lowercase", repo)
	}
	return nil
}
