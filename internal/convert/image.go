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
