package convert

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"go.yaml.in/yaml/v3"
)

// copyCmd translates COPY: a copy step per source kind, a file step per
// heredoc.
func (c *converter) copyCmd(s *stageOut, cmd *instructions.CopyCommand) {
	ln := line(cmd)
	switch {
	case cmd.Parents:
		c.unsupported(s, cmd, "COPY --parents has no strata equivalent")
		return
	case len(cmd.ExcludePatterns) > 0:
		c.unsupported(s, cmd, "COPY --exclude has no strata equivalent")
		return
	}
	from := ""
	if cmd.From != "" {
		if i := c.stageIndex(cmd.From, len(c.stages)-1); i >= 0 {
			from = c.stages[i].name
			if j := c.lastStage[strings.ToLower(cmd.From)]; j > i {
				c.warnf(ln, "docker refuses COPY --from=%s here: it takes the last stage of that name, at line %d, which is not built before this one; copied from the stage %s", cmd.From, c.stageLines[j], from)
			}
		} else {
			from = imageRef(c.word(ln, cmd.From, c.vars(s)))
		}
	}
	c.copyOrFiles(s, cmd, cmd.SourcesAndDest, from, cmd.Chown, cmd.Chmod)
}

// add translates ADD of local files as COPY; URLs, git repositories and
// local archives (which docker unpacks) have no strata equivalent.
func (c *converter) add(s *stageOut, cmd *instructions.AddCommand) {
	for _, src := range cmd.SourcePaths {
		switch {
		case isURL(src) || isGit(src):
			c.unsupported(s, cmd, "ADD of a URL or git repository has no strata equivalent (download it in a run step)")
			return
		case isArchive(src) && (cmd.Unpack == nil || *cmd.Unpack):
			c.unsupported(s, cmd, "ADD of a local archive (docker unpacks it) has no strata equivalent (copy it and unpack it in a run step)")
			return
		}
	}
	if len(cmd.ExcludePatterns) > 0 {
		c.unsupported(s, cmd, "ADD --exclude has no strata equivalent")
		return
	}
	if cmd.Unpack == nil || *cmd.Unpack {
		if files := mayBeArchives(cmd.SourcePaths); len(files) > 0 {
			c.warnf(line(cmd), "ADD %s: docker unpacks a local file that is a tar archive (plain or compressed) whatever its name, which the conversion cannot see; copied as it is (write COPY in the Dockerfile if it is not an archive, or unpack it in a run step)", strings.Join(files, " "))
		}
	}
	c.copyOrFiles(s, cmd, cmd.SourcesAndDest, "", cmd.Chown, cmd.Chmod)
}

// mayBeArchives are the sources of an ADD that may be files docker
// unpacks: buildkit tells an archive by its content, not its name, so
// only a directory (written with a trailing / or as the context, .) is
// known not to be one.
func mayBeArchives(sources []string) []string {
	var out []string
	for _, src := range sources {
		if strings.HasSuffix(src, "/") || path.Clean(src) == "." || path.Clean(src) == "/" {
			continue
		}
		out = append(out, src)
	}
	return out
}

var (
	urlRe     = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*://`)
	gitRe     = regexp.MustCompile(`^(git@|github\.com/)|\.git(#.*)?$`)
	archiveRe = regexp.MustCompile(`\.(tar|tar\.gz|tgz|tar\.bz2|tbz2?|tar\.xz|txz|tar\.zst|tzst)$`)
)

func isURL(s string) bool     { return urlRe.MatchString(s) }
func isGit(s string) bool     { return gitRe.MatchString(s) }
func isArchive(s string) bool { return archiveRe.MatchString(strings.ToLower(s)) }

// copyOrFiles writes the copy step of the source paths and a file step
// per heredoc source.
func (c *converter) copyOrFiles(s *stageOut, cmd instructions.Command, sd instructions.SourcesAndDest, from, chown, chmod string) {
	ln := line(cmd)
	v := c.vars(s)
	dest := c.word(ln, sd.DestPath, v)
	// docker takes a destination ending in / or /. (or ".") as a directory.
	if dest == "." || strings.HasSuffix(dest, "/.") {
		dest = strings.TrimSuffix(dest, ".")
		if dest == "" {
			dest = "./"
		}
	}
	var owner, mode string
	if chown != "" {
		owner = ownerSpec(c.word(ln, chown, v))
	}
	dest = c.copyDest(s, dest, owner)
	if chmod != "" {
		mode = c.word(ln, chmod, v)
		if !octalRe.MatchString(mode) && !strings.Contains(mode, "${") {
			c.unsupported(s, cmd, fmt.Sprintf("%s --chmod=%s (not octal) has no strata equivalent", strings.ToUpper(cmd.Name()), chmod))
			return
		}
	}
	comments := cmd.Comments()
	if len(sd.SourcePaths) > 0 {
		step := &yaml.Node{Kind: yaml.MappingNode}
		srcs := c.words(ln, sd.SourcePaths, v)
		if from == "" {
			for i, p := range srcs {
				srcs[i] = contextPath(p)
			}
		}
		if len(srcs) == 1 {
			put(step, "copy", str(srcs[0]))
		} else {
			put(step, "copy", strList(srcs...))
		}
		if from != "" {
			put(step, "from", str(from))
		}
		put(step, "to", str(dest))
		putOwnerMode(step, owner, mode)
		s.add(step, comments)
		comments = nil
	}
	c.fileSteps(s, ln, v, sd.SourceContents, dest, owner, mode, comments)
}

// fileSteps writes a file step per heredoc of a COPY: docker writes each
// as dest, or as dest/NAME when dest ends in /.
func (c *converter) fileSteps(s *stageOut, ln int, v vars, files []instructions.SourceContent, dest, owner, mode string, comments []string) {
	for _, f := range files {
		p := dest
		if strings.HasSuffix(p, "/") {
			p += f.Path
		}
		content := escapeDollar(f.Data)
		if f.Expand {
			content = c.heredocContent(ln, f.Data, v)
		}
		step := mapping("file", str(p), "content", str(content))
		putOwnerMode(step, owner, mode)
		s.add(step, comments)
		comments = nil
	}
}

var octalRe = regexp.MustCompile(`^[0-7]{1,4}$`)

func putOwnerMode(step *yaml.Node, owner, mode string) {
	if owner != "" {
		put(step, "owner", str(owner))
	}
	if mode != "" {
		put(step, "mode", str(mode))
	}
}

// contextPath is a COPY source as strata wants it: relative to the build
// context. docker takes "/src" as "src" of the context.
func contextPath(p string) string {
	if strings.HasPrefix(p, "/") {
		trailing := strings.HasSuffix(p, "/")
		p = strings.TrimPrefix(path.Clean(p), "/")
		if p == "" {
			return "."
		}
		if trailing {
			p += "/"
		}
	}
	return p
}

// heredocContent translates a COPY heredoc whose variables docker expands
// (an unquoted delimiter): quotes are kept, variables become ${NAME}.
func (c *converter) heredocContent(ln int, data string, v vars) string {
	saved := c.lex.SkipProcessQuotes
	c.lex.SkipProcessQuotes = true
	defer func() { c.lex.SkipProcessQuotes = saved }()
	return c.word(ln, data, v)
}
