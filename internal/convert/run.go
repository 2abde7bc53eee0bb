package convert

import (
	"fmt"
	"path"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"go.yaml.in/yaml/v3"
)

// pipesDir is where docker puts the script of a RUN <<EOF heredoc that
// starts with #!; the converted step mounts a tmpfs there.
const pipesDir = "/dev/pipes"

// run translates RUN into a run step: docker's default network (which
// reaches the internet) becomes network: host, its cache, secret and
// tmpfs mounts become mounts, and the stage's ARGs become the step's env
// as docker gives them to RUN.
func (c *converter) run(s *stageOut, cmd *instructions.RunCommand) {
	ln := line(cmd)
	// The identity expander makes buildkit parse every --mount option
	// and leaves variables as written.
	if err := cmd.Expand(func(w string) (string, error) { return w, nil }); err != nil {
		c.unsupported(s, cmd, fmt.Sprintf("RUN flags that do not parse (%v)", err))
		return
	}
	s.ran()
	var pre []string
	step := &yaml.Node{Kind: yaml.MappingNode}
	argv, exec, mounts := c.runCommand(s, cmd)
	if exec {
		put(step, "run", strList(argv...))
	} else {
		put(step, "run", str(argv[0]))
	}
	switch net := instructions.GetNetwork(cmd); net {
	case "none":
	case "host", "default", "":
		put(step, "network", str("host"))
	default:
		c.warnf(ln, "RUN --network=%s has no strata equivalent; the step uses network: host", net)
		put(step, "network", str("host"))
	}
	for _, f := range cmd.FlagsUsed {
		switch f {
		case "mount", "network":
		default:
			c.warnf(ln, "RUN --%s has no strata equivalent; ignored", f)
			pre = append(pre, fmt.Sprintf("strata convert: RUN --%s has no strata equivalent; ignored", f))
		}
	}
	if env := c.runEnv(s); env != nil {
		put(step, "env", env)
	}
	for _, m := range instructions.GetMounts(cmd) {
		n, why := c.mount(s, ln, m)
		if why != "" {
			c.warnf(ln, "%s; the step runs without it", why)
			pre = append(pre, "strata convert: "+why+"; the step runs without it")
			continue
		}
		mounts = append(mounts, n)
	}
	if len(mounts) > 0 {
		put(step, "mounts", &yaml.Node{Kind: yaml.SequenceNode, Content: mounts})
	}
	s.comment(pre...)
	s.add(step, cmd.Comments())
}

// runCommand is the command of a RUN: a string for the shell (exec
// false, one element) or an argv. It follows buildkit's handling of
// heredocs. Extra mounts (the tmpfs a script heredoc needs) come back too.
func (c *converter) runCommand(s *stageOut, cmd *instructions.RunCommand) (argv []string, exec bool, mounts []*yaml.Node) {
	args := cmd.CmdLine
	if !cmd.PrependShell {
		return escapeAll(args), true, nil
	}
	script := strings.Join(args, " ")
	if len(cmd.Files) > 0 && len(args) == 1 {
		if h := parser.MustParseHeredoc(args[0]); h != nil {
			data := cmd.Files[0].Data
			if cmd.Files[0].Chomp {
				data = parser.ChompHeredocContent(data)
			}
			if strings.HasPrefix(data, "#!") {
				return c.scriptHeredoc(s, cmd.Files[0].Name, data)
			}
			script = data
		} else {
			var b strings.Builder
			b.WriteString(args[0])
			for _, f := range cmd.Files {
				b.WriteString("\n" + f.Data + f.Name)
			}
			script = b.String()
		}
	}
	return c.shellForm(s, escapeDollar(script))
}

// shellForm runs script with the shell in effect: the stage's shell if
// it is the one, else an exec form with the shell written out. The first
// string-form RUN of a stage decides the stage's shell: a shell: key
// where the shell in effect is not the one the stage would have without.
func (c *converter) shellForm(s *stageOut, script string) ([]string, bool, []*yaml.Node) {
	if !s.shellOK {
		s.shellOK = true
		if !equal(s.cur, s.baseShell) {
			s.shell = s.cur
		}
	}
	if equal(s.cur, s.stageShell()) {
		return []string{script}, false, nil
	}
	return append(escapeAll(s.cur), script), true, nil
}

// stageShell is strata's shell for the stage's string-form runs: its
// shell: key, else the one it has without.
func (s *stageOut) stageShell() []string {
	if s.shell != nil {
		return s.shell
	}
	return s.baseShell
}

// scriptHeredoc runs a RUN <<EOF whose text starts with #! as docker
// does: the text becomes an executable file in /dev/pipes (a tmpfs here,
// so it reaches no layer) that is executed.
func (c *converter) scriptHeredoc(s *stageOut, name, data string) ([]string, bool, []*yaml.Node) {
	file := path.Join(pipesDir, name)
	delim := "STRATA_EOF"
	for strings.Contains(data, delim) {
		delim += "_"
	}
	if !strings.HasSuffix(data, "\n") {
		data += "\n"
	}
	script := fmt.Sprintf("cat > %s <<'%s'\n%s%s\nchmod 755 %s\nexec %s", file, delim, data, delim, file, file)
	argv, exec, _ := c.shellForm(s, escapeDollar(script))
	m := mapping("type", str("tmpfs"), "target", str(pipesDir))
	return argv, exec, []*yaml.Node{m}
}

// runEnv is the env docker gives a RUN from the stage's ARGs, over the
// stage's env: an arg that an ENV set after its ARG is left to the env
// step; one whose ARG gave a value after an ENV of the name gets that
// value written out, as strata's ${NAME} would give the ENV's.
func (c *converter) runEnv(s *stageOut) *yaml.Node {
	var pairs []string
	for _, a := range s.args {
		_, env := s.env[a]
		switch {
		case env:
			if val, shadowed := c.argShadowed(s, a); shadowed {
				pairs = append(pairs, a, escapeDollar(val))
			}
		case s.unset[a]:
			pairs = append(pairs, a, "")
		default:
			pairs = append(pairs, a, "${"+a+"}")
		}
	}
	if len(pairs) == 0 {
		return nil
	}
	return strMap(pairs...)
}

// mount translates a RUN --mount; why is set when strata has no
// equivalent for it.
func (c *converter) mount(s *stageOut, ln int, m *instructions.Mount) (n *yaml.Node, why string) {
	v := c.vars(s)
	target := c.word(ln, m.Target, v)
	var ignored []string
	if m.ReadOnly && m.Type == instructions.MountTypeCache {
		ignored = append(ignored, "ro")
	}
	if m.Mode != nil || m.UID != nil || m.GID != nil {
		ignored = append(ignored, "mode/uid/gid")
	}
	switch m.Type {
	case instructions.MountTypeCache:
		if m.From != "" || m.Source != "" {
			ignored = append(ignored, "from/source")
		}
		if m.CacheSharing != "" && m.CacheSharing != instructions.MountSharingShared {
			ignored = append(ignored, "sharing="+string(m.CacheSharing))
		}
		n = mapping("type", str("cache"), "target", str(target))
		if m.CacheID != "" {
			put(n, "id", str(c.word(ln, m.CacheID, v)))
		}
	case instructions.MountTypeSecret:
		if m.Env != nil {
			return nil, fmt.Sprintf("RUN --mount=type=secret,env=%s (a secret as an environment variable) has no strata equivalent", *m.Env)
		}
		id := m.CacheID
		if id == "" {
			id = path.Base(m.Target)
		}
		if target == "" {
			target = "/run/secrets/" + id
		}
		if m.Required {
			ignored = append(ignored, "required")
		}
		n = mapping("type", str("secret"), "id", str(c.word(ln, id, v)), "target", str(target))
	case instructions.MountTypeTmpfs:
		if m.SizeLimit > 0 {
			ignored = append(ignored, "size")
		}
		n = mapping("type", str("tmpfs"), "target", str(target))
	default:
		return nil, fmt.Sprintf("RUN --mount=type=%s has no strata equivalent (copy what the step needs in a step before it)", m.Type)
	}
	if len(ignored) > 0 {
		c.warnf(ln, "RUN --mount=type=%s,target=%s: %s has no strata equivalent; ignored", m.Type, m.Target, strings.Join(ignored, ", "))
	}
	return n, ""
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
