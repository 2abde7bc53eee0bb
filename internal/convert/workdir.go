package convert

import (
	"maps"
	"path"
	"slices"
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
	abs := dir
	switch {
	case strings.Contains(dir, "$"):
		abs = ""
	case !path.IsAbs(dir) && s.wd != "":
		abs = path.Join(s.wd, dir)
	case !path.IsAbs(dir):
		abs = "" // relative to the base image's, unknown here
	}
	made := false
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
		made = true
	}
	s.add(mapping("workdir", str(p)), comments)
	s.wd = abs
	if abs != "" && abs != "/" {
		if s.workdirs == nil {
			s.workdirs = map[string]bool{}
		}
		s.workdirs[abs] = s.workdirs[abs] || made
	}
}

// copyDest is what a COPY to dest (with --chown owner, or "") needs in a
// strata recipe to do what docker's does after the WORKDIRs before it:
// a dest that is a WORKDIR's path is a copy into it (dest gets a "/");
// and a copy with an owner into a WORKDIR no step has made yet would make
// that dir owned by the owner (docker's WORKDIR made it root's): a run
// step making it, as root, comes first.
func (c *converter) copyDest(s *stageOut, dest, owner string) string {
	abs := dest
	if !path.IsAbs(abs) {
		if s.wd == "" || strings.Contains(abs, "$") {
			return dest
		}
		abs = path.Join(s.wd, abs) + trailing(abs)
	}
	if _, ok := s.workdirs[path.Clean(abs)]; ok && !strings.HasSuffix(dest, "/") {
		dest, abs = dest+"/", abs+"/"
	}
	dir := path.Clean(abs)
	if !strings.HasSuffix(abs, "/") {
		dir = path.Dir(dir)
	}
	for _, w := range slices.Sorted(maps.Keys(s.workdirs)) {
		if s.workdirs[w] || (dir != w && !strings.HasPrefix(dir, w+"/")) {
			continue
		}
		if owner == "" { // a copy as root makes it as docker's WORKDIR did
			s.workdirs[w] = true
			continue
		}
		if !s.open {
			continue
		}
		user := s.user
		if !isRootUser(user) {
			s.add(mapping("user", str("0")), nil)
		}
		s.add(mapping("run", strList("/bin/mkdir", "-p", w)), []string{"strata convert: docker's WORKDIR made " + w + ", owned by root; a copy with an owner would make it the owner's (with the image's /bin/mkdir)"})
		if !isRootUser(user) {
			s.add(mapping("user", str(user)), nil)
		}
		s.workdirs[w] = true
	}
	return dest
}

// trailing is "/" if p ends with one.
func trailing(p string) string {
	if strings.HasSuffix(p, "/") {
		return "/"
	}
	return ""
}

// ran notes that a run step ran in the working dir: it made it, as
// root's, if it was not there.
func (s *stageOut) ran() {
	if _, ok := s.workdirs[s.wd]; ok {
		s.workdirs[s.wd] = true
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
