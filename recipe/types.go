package recipe

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Recipe is a loaded, validated strata.yaml. Both recipe forms are
// normalised to Stages: the single-image form gives exactly one stage, whose
// Name is "" (it cannot be named by --target or copy.from).
type Recipe struct {
	// File is the recipe path as given to Load, or the name given to Parse.
	// It is the file part of every Pos.
	File string
	// Context is the build context directory: the recipe's directory
	// unless WithContext was given. Copy sources are relative to it.
	Context string
	// Args are the declared args in file order, with their final values
	// (defaults overridden by WithBuildArgs).
	Args []Arg
	// Stages in file order. The last one is the image unless a target
	// names another (see Needed).
	Stages []*Stage
	// Image is the `image:` section: the final image's config.
	Image Image
	// Warnings are problems that do not stop the build, such as a build
	// arg that no `args` entry declares.
	Warnings []Warning
	// Platforms are the `platforms:` the image is built for (one image
	// index); empty: one platform (--platform, or the host's).
	Platforms []Platform

	src *source // for ForPlatform
}

// Arg is one entry of the recipe's `args` mapping.
type Arg struct {
	Name string
	// Default is the value written in the recipe; HasDefault is false for
	// an arg declared with no value (`NAME:` or `NAME: null`).
	Default    string
	HasDefault bool
	// Value is the value in use: the build arg if one was given, else the
	// default. Set is false when the arg has neither; using it in ${NAME}
	// is then an error.
	Value string
	Set   bool
	Pos   Pos
}

// Stage is one stage of a recipe: a base and the steps run on it.
//
// Top-level platform, env, workdir, user and shell are the defaults of
// every stage; a stage's own values override them (env is merged, the
// stage's keys winning). All strings are expanded except those listed in
// Unresolved; see Expand.
type Stage struct {
	// Name is the stage name; "" for the single-image form.
	Name string
	// Index is the stage's position in Recipe.Stages.
	Index int
	// Pos is the position of the stage's mapping (for the single-image
	// form, the document's top-level mapping).
	Pos Pos
	// From is the stage's base.
	From Base
	// Platform is the stage's platform; the zero value means the
	// host's (or --platform). PlatformPos is where platform: says so
	// (the top level's, for a stage that takes it from there).
	Platform    Platform
	PlatformPos Pos
	// Env is set for every step and written to the image config, in order.
	Env []EnvVar
	// Workdir is the initial working directory, absolute; "" keeps the
	// base image's.
	Workdir string
	// User is the initial user (name or uid[:gid]); "" keeps the base
	// image's.
	User string
	// Shell runs the string form of `run`; nil: the base image's Shell
	// (docker's SHELL), else DefaultShell.
	Shell []string
	// Steps in order.
	Steps []*Step
	// DependsOn lists the indexes of the stages this stage needs (its
	// from: and every copy from:), sorted, without duplicates.
	DependsOn []int
	// Unresolved lists the ${NAME} references that the recipe does not
	// define and that the base image's env may define. The strings that
	// contain them are kept unexpanded until Expand is called. It is empty
	// when the stage's base chain ends in scratch: undefined names are
	// then errors at load time.
	Unresolved []Var

	// src is what Expand decodes again; nil for stages built by hand.
	src *stageSource
}

// Var is a ${NAME} reference in the recipe.
type Var struct {
	Name string
	Pos  Pos
}

// EnvVar is one environment variable.
type EnvVar struct {
	Name  string
	Value string
}

// String returns NAME=VALUE.
func (e EnvVar) String() string { return e.Name + "=" + e.Value }

// BaseKind says where a base (or a copy source) comes from.
type BaseKind int

// The kinds of base reference.
const (
	// KindScratch is the empty base: no layers.
	KindScratch BaseKind = iota
	// KindRegistry is an image reference pulled from a registry.
	KindRegistry
	// KindOCILayout is an OCI image layout on disk (oci-layout://DIR).
	KindOCILayout
	// KindDockerArchive is a `docker save` tarball (docker-archive://FILE).
	KindDockerArchive
	// KindStage is the result of another stage of the recipe.
	KindStage
)

var baseKindNames = [...]string{"scratch", "registry", "oci-layout", "docker-archive", "stage"}

// String returns the kind's name, such as "oci-layout".
func (k BaseKind) String() string {
	if k < 0 || int(k) >= len(baseKindNames) {
		return "BaseKind(" + strconv.Itoa(int(k)) + ")"
	}
	return baseKindNames[k]
}

// Base is a `from:` of a stage, or the `from:` of a copy step.
type Base struct {
	Kind BaseKind
	// Ref is the reference as written, after ${NAME} expansion: "scratch",
	// "127.0.0.1:5000/library/busybox:latest", "oci-layout://dir:tag",
	// "docker-archive://file.tar", or a stage name.
	Ref string
	// Path is the directory (KindOCILayout) or file (KindDockerArchive),
	// joined to Recipe.Context when relative.
	Path string
	// Tag is the tag of a KindOCILayout ref (the org.opencontainers.image.ref.name
	// annotation to select), or of a KindRegistry ref; "" when absent.
	Tag string
	// Digest is the "sha256:…" of a KindOCILayout or KindRegistry ref; "" when absent.
	Digest string
	// Stage is the index in Recipe.Stages when Kind is KindStage, else -1.
	Stage int
	// Pos is the position of the reference in the recipe.
	Pos Pos
}

// Platform is an OS/Arch[/Variant] triple. The zero value means "the host's".
type Platform struct {
	OS      string
	Arch    string
	Variant string
}

// IsZero reports whether p is unset.
func (p Platform) IsZero() bool { return p == Platform{} }

// String returns "os/arch" or "os/arch/variant", or "" for the zero value.
func (p Platform) String() string {
	if p.IsZero() {
		return ""
	}
	s := p.OS + "/" + p.Arch
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// StepKind is a step's action.
type StepKind int

// The step actions; each step has exactly one.
const (
	RunStep StepKind = iota
	CopyStep
	EnvStep
	WorkdirStep
	UserStep
	// FileStep writes one file whose content the recipe holds.
	FileStep
)

var stepKindNames = [...]string{"run", "copy", "env", "workdir", "user", "file"}

// String returns the action's key in the recipe, such as "run".
func (k StepKind) String() string {
	if k < 0 || int(k) >= len(stepKindNames) {
		return "StepKind(" + strconv.Itoa(int(k)) + ")"
	}
	return stepKindNames[k]
}

// Step is one entry of a stage's `steps`. Exactly one of Run, Copy, File,
// Env, Workdir and User is set, as Kind says. Only run, copy and file
// steps can change files; the others are metadata steps and make no layer.
type Step struct {
	// Index is the step's 0-based index in its stage (messages number
	// steps from 1).
	Index int
	// Pos is the position of the step's mapping.
	Pos Pos
	// Name is the optional `name:`.
	Name string
	Kind StepKind

	Run  *Run
	Copy *Copy
	File *File
	// Env holds the variables an env step sets, in order.
	Env []EnvVar
	// Workdir is the directory a workdir step sets; a relative one is
	// resolved against the recipe's last workdir, or, before the recipe
	// sets one, kept relative for the build to resolve against the base
	// image's WorkingDir.
	Workdir string
	// User is the user a user step sets (name or uid[:gid]).
	User string
}

// Run is a run step.
type Run struct {
	// Exec is true for the exec form (`run: [argv...]`): no shell.
	Exec bool
	// Command is the string form's command line, given to Shell.
	Command string
	// Shell is the stage's shell, for the string form; nil for the exec
	// form, and when the stage sets none (the base image's, see Stage).
	Shell []string
	// Args is the exec form's argv; nil for the string form.
	Args []string
	// Network is the step's network; NetworkNone unless `network: host`.
	Network Network
	// Env is set for this step only, in order; it overrides the stage's.
	Env []EnvVar
	// Mounts are the step's cache, secret and tmpfs mounts, in order.
	Mounts []Mount
}

// DefaultShell runs the string form of `run` when neither the recipe nor
// the base image's config (docker's SHELL) names a shell.
var DefaultShell = []string{"/bin/sh", "-c"}

// Argv returns the process to execute: the exec form's Args, or the
// string form's Command given to Shell, else to shell (the base image's,
// nil or empty: DefaultShell).
func (r *Run) Argv(shell []string) []string {
	if r.Exec {
		return append([]string(nil), r.Args...)
	}
	switch {
	case r.Shell != nil:
		shell = r.Shell
	case len(shell) == 0:
		shell = DefaultShell
	}
	argv := append([]string(nil), shell...)
	return append(argv, r.Command)
}

// Network is a run step's network mode.
type Network string

// The network modes.
const (
	// NetworkNone gives the step a loopback interface only (the default).
	NetworkNone Network = "none"
	// NetworkHost shares the host's network namespace.
	NetworkHost Network = "host"
)

// MountType is the type of a run step's mount.
type MountType string

// The mount types.
const (
	// MountCache is a directory that persists across builds and is never
	// committed. Its ID defaults to the target path.
	MountCache MountType = "cache"
	// MountSecret is a file whose content comes from --secret ID; never
	// committed. ID is required.
	MountSecret MountType = "secret"
	// MountTmpfs is an empty tmpfs.
	MountTmpfs MountType = "tmpfs"
)

// Mount is a mount of a run step.
type Mount struct {
	Type MountType
	// Target is the cleaned path inside the container; relative only before
	// the recipe sets a workdir (the build resolves it against the base's).
	Target string
	// ID names a cache (default: Target) or a secret (required); "" for tmpfs.
	ID string
	// DefaultID says a cache's ID is its Target's by default: the build
	// makes it the absolute target, once the working dir is known.
	DefaultID bool
	Pos       Pos
}

// Copy is a copy step.
type Copy struct {
	// Sources are the paths to copy, in order. From the build context
	// (From == nil) they are cleaned, relative, slash-separated paths that
	// stay inside Recipe.Context, and may hold glob patterns; "." is the
	// whole context. From a stage or image they are absolute paths in that
	// root. A trailing "/" as written is kept.
	Sources []string
	// To is the destination; a relative `to:` is resolved against the
	// recipe's last workdir, or, before the recipe sets one, kept
	// relative for the build to resolve against the base image's
	// WorkingDir (docker's semantics). A trailing "/" as written is kept:
	// the destination is a directory.
	To string
	// From is where the sources come from: nil for the build context,
	// else a stage (KindStage) or an image.
	From *Base
	// Owner is the owner of the copied files; nil keeps 0:0.
	Owner *Owner
	// Mode is the permission bits of the copied files; nil keeps theirs.
	Mode *os.FileMode
}

// DefaultFileMode is the mode of a file step's file when the recipe gives
// none, as docker gives a COPY <<EOF heredoc.
const DefaultFileMode os.FileMode = 0o644

// File is a file step: one regular file written with the exact bytes of
// Content, no shell involved.
type File struct {
	// Path is the absolute, cleaned path of the file; a relative `file:`
	// is resolved like a copy destination, against the working directory
	// in effect (the recipe's last workdir, else "/").
	Path string
	// Content is the file's bytes, after ${NAME} expansion. A YAML block
	// scalar written `|` ends in a newline, `|-` does not.
	Content string
	// Mode is the permission bits of the file; nil means DefaultFileMode.
	Mode *os.FileMode
	// Owner is the owner of the file; nil means 0:0.
	Owner *Owner
}

// Perm returns the file's mode: Mode, or DefaultFileMode when it is nil.
func (f *File) Perm() os.FileMode {
	if f.Mode == nil {
		return DefaultFileMode
	}
	return *f.Mode
}

// Owner is a copy's or a file's owner: a user and an optional group, each a numeric id
// or a name to look up in the stage's /etc/passwd and /etc/group.
type Owner struct {
	// User is the user as written (a name or a number).
	User string
	// UID is the numeric user id, or -1 when User is a name.
	UID int
	// Group is the group as written; "" when not given (then the group is
	// the UID's number for a numeric user, or the named user's primary
	// group).
	Group string
	// GID is the numeric group id, or -1 when Group is a name or empty.
	GID int
}

// String returns "user" or "user:group" as written.
func (o Owner) String() string {
	if o.Group == "" {
		return o.User
	}
	return o.User + ":" + o.Group
}

// Image is the `image:` section: the config of the final image. Nil slices
// and maps keep the base image's values; an empty, non-nil Entrypoint or
// Cmd (written `[]`) clears them.
type Image struct {
	Entrypoint  []string
	Cmd         []string
	Labels      map[string]string
	Annotations map[string]string
	Expose      []Port
	// Volumes are absolute, cleaned paths.
	Volumes []string
	// StopSignal is the normalised signal name, such as "SIGTERM"; "" keeps
	// the base image's.
	StopSignal string
	// Pos is the position of the `image:` mapping; zero if absent.
	Pos Pos
}

// Port is an exposed port.
type Port struct {
	// Number is 1..65535.
	Number int
	// Proto is "tcp", "udp" or "sctp".
	Proto string
}

// String returns "number/proto", the image config's key.
func (p Port) String() string { return strconv.Itoa(p.Number) + "/" + p.Proto }

// Warning is a problem that does not stop the build.
type Warning struct {
	Pos Pos
	Msg string
	// BaseEnv is set on a warning about a ${NAME} only the base image's
	// env can define: resolving the base settles it (an error if the
	// base does not define it either), so only an offline check shows it.
	BaseEnv bool
}

// String returns "FILE:LINE:COL: message" (or "FILE: message" without a line).
func (w Warning) String() string { return (&Error{Pos: w.Pos, Msg: w.Msg}).Error() }

// Summary is the step in one line, as progress and image history show it.
func (s *Step) Summary() string {
	switch s.Kind {
	case RunStep:
		if s.Run.Exec {
			return fmt.Sprintf("%q", s.Run.Args)
		}
		return s.Run.Command
	case CopyStep:
		from := ""
		if s.Copy.From != nil {
			from = " from " + s.Copy.From.Ref
		}
		return strings.Join(s.Copy.Sources, " ") + from + " to " + s.Copy.To
	case EnvStep:
		parts := make([]string, len(s.Env))
		for i, e := range s.Env {
			parts[i] = e.String()
		}
		return strings.Join(parts, " ")
	case FileStep:
		return s.File.Path
	case WorkdirStep:
		return s.Workdir
	case UserStep:
		return s.User
	}
	return ""
}

// ChangesFiles reports whether the step may change files (run, copy,
// file); the others change only the image config.
func (s *Step) ChangesFiles() bool {
	return s.Kind == RunStep || s.Kind == CopyStep || s.Kind == FileStep
}
