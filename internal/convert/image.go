package convert

import (
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// imageConfig is the part of docker's image config that strata's image:
// section writes, as the stages of a FROM chain set it.
type imageConfig struct {
	entrypoint, cmd []string
	// entrypointSet and cmdSet: the chain set them (else the base
	// image's stay); a cleared cmd is set and empty.
	entrypointSet, cmdSet bool
	// cmdInStage: a CMD was seen in the current stage (docker's ENTRYPOINT
	// clears the cmd unless one was).
	cmdInStage bool
	labelKeys  []string
	labels     map[string]string
	expose     []string
	volumes    []string
	stopSignal string
	shell      []string
	shellLine  int
}

func (ic imageConfig) clone() imageConfig {
	c := ic
	c.labelKeys = append([]string(nil), ic.labelKeys...)
	c.labels = map[string]string{}
	for k, v := range ic.labels {
		c.labels[k] = v
	}
	c.expose = append([]string(nil), ic.expose...)
	c.volumes = append([]string(nil), ic.volumes...)
	c.cmdInStage = false
	return c
}

func (ic *imageConfig) setLabel(k, v string) {
	if ic.labels == nil {
		ic.labels = map[string]string{}
	}
	if _, ok := ic.labels[k]; !ok {
		ic.labelKeys = append(ic.labelKeys, k)
	}
	ic.labels[k] = v
}

func addUnique(list []string, items ...string) []string {
	for _, it := range items {
		if !contains(list, it) {
			list = append(list, it)
		}
	}
	return list
}

// commandLine is a CMD or ENTRYPOINT as docker stores it: the string form
// wrapped in the shell in effect.
func commandLine(s *stageOut, cl instructions.ShellDependantCmdLine) []string {
	if !cl.PrependShell {
		return escapeAll(cl.CmdLine)
	}
	if len(cl.CmdLine) == 0 {
		return []string{}
	}
	out := escapeAll(s.cur)
	return append(out, escapeDollar(strings.Join(cl.CmdLine, " ")))
}

func escapeAll(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = escapeDollar(s)
	}
	return out
}

// imageCommand translates the instructions that set the image config, and
// reports those strata has no equivalent for.
func (c *converter) imageCommand(s *stageOut, cmd instructions.Command) {
	ln := line(cmd)
	switch cmd := cmd.(type) {
	case *instructions.CmdCommand:
		s.cfg.cmd, s.cfg.cmdSet, s.cfg.cmdInStage = commandLine(s, cmd.ShellDependantCmdLine), true, true
		s.comment(cmd.Comments()...)
	case *instructions.EntrypointCommand:
		s.cfg.entrypoint, s.cfg.entrypointSet = commandLine(s, cmd.ShellDependantCmdLine), true
		if cmd.CmdLine == nil {
			s.cfg.entrypoint = []string{}
		}
		if !s.cfg.cmdInStage {
			s.cfg.cmd, s.cfg.cmdSet = []string{}, true
		}
		s.comment(cmd.Comments()...)
	case *instructions.ExposeCommand:
		v := c.imageVars(s)
		for _, p := range cmd.Ports {
			s.cfg.expose = addUnique(s.cfg.expose, c.ports(ln, c.word(ln, p, v))...)
		}
		s.comment(cmd.Comments()...)
	case *instructions.VolumeCommand:
		for _, vol := range c.words(ln, cmd.Volumes, c.imageVars(s)) {
			if !strings.HasPrefix(vol, "/") && !strings.HasPrefix(vol, "${") {
				c.warnf(ln, "VOLUME %s is not an absolute path, which strata's volumes refuse (docker writes it as it is into the image config); left out", vol)
				continue
			}
			s.cfg.volumes = addUnique(s.cfg.volumes, vol)
		}
		s.comment(cmd.Comments()...)
	case *instructions.StopSignalCommand:
		s.cfg.stopSignal = c.word(ln, cmd.Signal, c.imageVars(s))
		s.comment(cmd.Comments()...)
	case *instructions.HealthCheckCommand:
		c.unsupported(s, cmd, "HEALTHCHECK has no strata equivalent")
	case *instructions.OnbuildCommand:
		c.unsupported(s, cmd, "ONBUILD has no strata equivalent")
	default:
		c.unsupported(s, cmd, strings.ToUpper(cmd.Name())+" has no strata equivalent")
	}
}

// setsConfig says whether cmd sets a part of the image config that the
// recipe's image: section carries.
func setsConfig(cmd instructions.Command) bool {
	switch cmd.(type) {
	case *instructions.CmdCommand, *instructions.EntrypointCommand, *instructions.LabelCommand,
		*instructions.MaintainerCommand, *instructions.ExposeCommand, *instructions.VolumeCommand,
		*instructions.StopSignalCommand:
		return true
	}
	return false
}

// targetConfigs reports the image config a named stage other than the
// last sets: docker's --target of that stage gives an image with the
// config of the stage's FROM chain, but strata has one image: section,
// the last stage's, applied to whatever stage --target builds. An
// instruction of a stage the last is not built on is dropped; one of a
// stage it is built on reaches image:, which a --target of that stage
// gets with what the stages after it set. (An unnamed stage cannot be a
// docker --target.)
func (c *converter) targetConfigs() {
	last := len(c.stages) - 1
	// after is, for each stage the last is built on, the line of the
	// first config instruction of the stages after it up to the last.
	after := map[int]int{}
	later := 0
	for i := last; i >= 0; i = c.stages[i].parent {
		after[i] = later
		if cmds := c.stages[i].cfgCmds; len(cmds) > 0 {
			later = line(cmds[0])
		}
	}
	for i, s := range c.stages[:last] {
		if c.dockerNames[i] == "" {
			continue
		}
		next, inChain := after[i]
		for _, cmd := range s.cfgCmds {
			what := strings.ToUpper(cmd.Name())
			switch {
			case !inChain:
				c.warnf(line(cmd), "%s in stage %q is dropped: strata has no image config per stage; its image: section is the last stage's, which a --target %s image gets too", what, s.name, s.name)
			case next > 0:
				c.warnf(line(cmd), "%s in stage %q reaches image: through the last stage, built on it; but strata has no image config per stage: a --target %s image also gets what the stages after it set (line %d)", what, s.name, s.name, next)
			}
		}
	}
}

// ports expands a docker port range (8000-8002/tcp) into its ports, as
// docker writes them into the image config.
func (c *converter) ports(ln int, p string) []string {
	num, proto, hasProto := strings.Cut(p, "/")
	lo, hi, isRange := strings.Cut(num, "-")
	if !isRange {
		return []string{p}
	}
	a, err1 := strconv.Atoi(lo)
	b, err2 := strconv.Atoi(hi)
	if err1 != nil || err2 != nil || a > b || b-a > 1000 {
		c.warnf(ln, "EXPOSE %s: not a port range strata can write; kept as written", p)
		return []string{p}
	}
	var out []string
	for n := a; n <= b; n++ {
		q := strconv.Itoa(n)
		if hasProto {
			q += "/" + proto
		}
		out = append(out, q)
	}
	return out
}
