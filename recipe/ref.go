package recipe

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// The grammar of distribution/reference, without its dependency.
const (
	alnum      = `[a-z0-9]+`
	separator  = `(?:[._]|__|[-]+)`
	pathComp   = alnum + `(?:` + separator + alnum + `)*`
	domainComp = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
	domain     = `(?:` + domainComp + `(?:\.` + domainComp + `)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?`
	tagPat     = `[\w][\w.-]{0,127}`
	digestPat  = `[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}`
)

var (
	domainRe = regexp.MustCompile(`^` + domain + `$`)
	pathRe   = regexp.MustCompile(`^` + pathComp + `(?:/` + pathComp + `)*$`)
	tagRe    = regexp.MustCompile(`^` + tagPat + `$`)
	digestRe = regexp.MustCompile(`^` + digestPat + `$`)
	sha256Re = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
)

// ImageRef is an image reference split into its parts, as docker reads
// it: "debian" is docker.io/library/debian:latest.
type ImageRef struct {
	// Domain is the registry host[:port]; "" means docker.io.
	Domain string
	// Path is the repository path, such as "library/debian".
	Path   string
	Tag    string
	Digest string
}

// ParseImageRef checks an image reference (REGISTRY/REPO[:TAG][@DIGEST])
// syntactically, as docker does. It does not reach any registry.
func ParseImageRef(s string) (ImageRef, error) {
	bad := func(why string) (ImageRef, error) {
		return ImageRef{}, fmt.Errorf("bad image reference %q: %s", s, why)
	}
	if s == "" {
		return bad("empty")
	}
	if len(s) > 4096 {
		return bad("too long")
	}
	var r ImageRef
	rest := s
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		r.Digest = rest[i+1:]
		rest = rest[:i]
		if !digestRe.MatchString(r.Digest) {
			return bad("digest must look like sha256:<64 hex digits>")
		}
		if strings.HasPrefix(r.Digest, "sha256:") && !sha256Re.MatchString(r.Digest) {
			return bad("a sha256 digest has 64 lowercase hex digits")
		}
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[i+1:], "/") {
		r.Tag = rest[i+1:]
		rest = rest[:i]
		if !tagRe.MatchString(r.Tag) {
			return bad("tag must be letters, digits, '_', '.' or '-', at most 128, not starting with '.' or '-'")
		}
	}
	if first, after, ok := strings.Cut(rest, "/"); ok &&
		(strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first) {
		if !domainRe.MatchString(first) {
			return bad(fmt.Sprintf("bad registry host %q", first))
		}
		r.Domain, rest = first, after
	}
	if rest == "" {
		return bad("no repository name")
	}
	if strings.ToLower(rest) != rest {
		return bad("repository name must be lowercase")
	}
	if !pathRe.MatchString(rest) {
		return bad("repository name must be lowercase letters, digits and separators (. _ __ -), in components separated by /")
	}
	if len(rest) > 255 {
		return bad("repository name longer than 255 characters")
	}
	r.Path = rest
	if r.Domain == "" && !strings.Contains(rest, "/") {
		r.Path = "library/" + rest
	}
	return r, nil
}

// looksLikeStage reports whether a from: value is shaped like a stage name
// rather than an image reference: no "/", ":" or ".".
func looksLikeStage(s string) bool { return !strings.ContainsAny(s, "/:.@") }

// stageNameRe is what a stage may be called: shaped like a stage reference.
var stageNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// ParseBase parses an image reference as a from: value that names no
// stage: scratch, a registry reference, oci-layout://DIR[:TAG|@DIGEST] or
// docker-archive://FILE; relative paths are joined to context.
func ParseBase(s, context string) (Base, error) { return parseBase(s, context) }

// parseBase parses a from: value that is not a stage reference.
func parseBase(s, context string) (Base, error) {
	b := Base{Ref: s, Stage: -1}
	switch {
	case s == "scratch":
		b.Kind = KindScratch
		return b, nil
	case strings.HasPrefix(s, "oci-layout://"):
		b.Kind = KindOCILayout
		rest := strings.TrimPrefix(s, "oci-layout://")
		if i := strings.LastIndex(rest, "@"); i >= 0 {
			b.Digest = rest[i+1:]
			rest = rest[:i]
			if !sha256Re.MatchString(b.Digest) {
				return Base{}, fmt.Errorf("bad oci-layout reference %q: digest must be sha256:<64 hex digits>", s)
			}
		} else if i := strings.LastIndex(rest, ":"); i >= 0 && !strings.Contains(rest[i+1:], "/") {
			b.Tag = rest[i+1:]
			rest = rest[:i]
			if !tagRe.MatchString(b.Tag) {
				return Base{}, fmt.Errorf("bad oci-layout reference %q: bad tag %q", s, b.Tag)
			}
		}
		if rest == "" {
			return Base{}, fmt.Errorf("bad oci-layout reference %q: no directory (want oci-layout://DIR[:TAG|@sha256:...])", s)
		}
		b.Path = joinContext(context, rest)
		return b, nil
	case strings.HasPrefix(s, "docker-archive://"):
		b.Kind = KindDockerArchive
		rest := strings.TrimPrefix(s, "docker-archive://")
		if rest == "" {
			return Base{}, fmt.Errorf("bad docker-archive reference %q: no file (want docker-archive://FILE)", s)
		}
		b.Path = joinContext(context, rest)
		return b, nil
	case strings.Contains(s, "://"):
		return Base{}, fmt.Errorf("bad base %q: unknown transport (want scratch, an image reference, oci-layout://DIR or docker-archive://FILE)", s)
	}
	r, err := ParseImageRef(s)
	if err != nil {
		return Base{}, err
	}
	b.Kind = KindRegistry
	b.Tag, b.Digest = r.Tag, r.Digest
	return b, nil
}

func joinContext(context, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(context, p)
}
