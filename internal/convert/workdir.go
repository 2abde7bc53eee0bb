package convert

import (
	"path"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// mkdirScript makes the directory $1 and its missing parents, each owned
// by the user $2 (user[:group], a name or an id), as docker's WORKDIR
// does under a USER: a directory that is there already is left as it is;
// a user without a group gets its own id (a number) or its primary group
// (a name) as docker gives it. It has no ${, which strata would expand.
const mkdirScript = `case $2 in *:*) o=$2 ;; *[!0-9]*) o=$2: ;; *) o=$2:$2 ;; esac
case $1 in /*) p=/ ;; *) p= ;; esac
set -f
IFS=/
for c in $1; do
  [ -n "$c" ] || continue
  p=$p$c/
  [ -d "$p" ] || { mkdir "$p" && chown "$o" "$p"; } || exit
done
`

// workdir translates WORKDIR. docker's WORKDIR also makes the directory
// (mkdir -p, 0755, the missing directories owned by the USER in effect);
// strata's workdir step does not. As root that changes nothing a later
// step sees: a run step's working dir, and a copy's destination, are made
// as root 0755 as they are needed (a COPY to the dir's own path is made a
// copy into it), so no step is added, and no image lacking mkdir
// (distroless) fails; only an empty WORKDIR no step writes into is not in
// the image. Under another USER, ownership matters: a run step before it
// makes the missing directories owned by the USER, with the image's sh,
// mkdir and chown (neither a copy nor a file step can make an empty
// directory). It runs where the workdir before it is, so that a relative
// WORKDIR resolves as docker resolves it.
func (c *converter) workdir(s *stageOut, cmd *instructions.WorkdirCommand) {
	ln := line(cmd)
	p := c.word(ln, cmd.Path, c.vars(s))
	comments := cmd.Comments()
	dir := p
	if !strings.Contains(dir, "$") {
		dir = path.Clean(dir)
	}
	switch {
	case dir == "/", isRootUser(s.user):
	case !s.open:
		c.warnf(ln, "docker's WORKDIR creates %s; strata's workdir step does not, and this stage's base is scratch, without a mkdir to run: a copy into it creates it, owned by the copy's owner", p)
	default:
		// Only root may make a directory anywhere: the user in effect
		// comes back after.
		s.comment(comments...)
		s.add(mapping("user", str("0")), []string{"strata convert: docker's WORKDIR creates the directory, owned by the USER (with the image's sh, mkdir and chown)"})
		s.add(mapping("run", strList("/bin/sh", "-c", mkdirScript, "sh", dir, s.user)), nil)
		s.add(mapping("user", str(s.user)), nil)
		comments = nil
	}
	s.add(mapping("workdir", str(p)), comments)
	if path.IsAbs(dir) {
		if s.workdirs == nil {
			s.workdirs = map[string]bool{}
		}
		s.workdirs[dir] = true
	}
}

// isRootUser says whether the USER u (a strata value; "" when the
// Dockerfile sets none, the base image's user then) makes directories
// owned by root, as docker's WORKDIR would. A user it cannot tell (a
// variable) is not root.
func isRootUser(u string) bool {
	user, group, _ := strings.Cut(u, ":")
	root := func(s string) bool { return s == "root" || s == "0" }
	return u == "" || root(user) && (group == "" || root(group))
}
