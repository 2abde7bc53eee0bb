package convert

import (
	"bytes"
	"strings"

	"go.yaml.in/yaml/v3"
)

// str is a string node: a literal block for several lines, else quoted
// only where YAML needs it.
func str(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	if strings.Contains(strings.TrimSuffix(s, "\n"), "\n") {
		n.Style = yaml.LiteralStyle
	}
	return n
}

// strList is a flow list of strings.
func strList(items ...string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, it := range items {
		s := str(it)
		if s.Style == yaml.LiteralStyle {
			n.Style = 0
		}
		n.Content = append(n.Content, s)
	}
	return n
}

// strMap is a mapping of strings from key, value pairs.
func strMap(pairs ...string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i+1 < len(pairs); i += 2 {
		put(n, pairs[i], str(pairs[i+1]))
	}
	return n
}

// mapping is a block mapping from key, node pairs.
func mapping(kv ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i+1 < len(kv); i += 2 {
		put(n, kv[i].(string), kv[i+1].(*yaml.Node))
	}
	return n
}

// put appends key: v to mapping m.
func put(m *yaml.Node, key string, v *yaml.Node) {
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

// commentText joins comment lines for a yaml.Node comment.
func commentText(lines []string) string {
	var b strings.Builder
	for i, l := range lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		for j, part := range strings.Split(l, "\n") {
			if j > 0 {
				b.WriteByte('\n')
			}
			b.WriteString("# " + part)
		}
	}
	return strings.ReplaceAll(b.String(), "# \n", "#\n")
}

// emit writes the recipe.
func (c *converter) emit() ([]byte, error) {
	doc := &yaml.Node{Kind: yaml.MappingNode}
	doc.HeadComment = commentText([]string{"Converted from " + c.file + " by strata convert."})
	if args := c.argsNode(); args != nil {
		put(doc, "args", args)
	}
	if len(c.stages) == 1 {
		s := c.stages[0]
		put(doc, "from", str(s.from))
		if len(s.comments) > 0 {
			doc.Content[len(doc.Content)-2].HeadComment = commentText(s.comments)
		}
		if s.platform != "" {
			put(doc, "platform", str(s.platform))
		}
		if s.shell != nil {
			put(doc, "shell", strList(s.shell...))
		}
		put(doc, "steps", c.stepsNode(s))
	} else {
		stages := &yaml.Node{Kind: yaml.SequenceNode}
		var carry []string
		for _, s := range c.stages {
			n := c.stageNode(s)
			if len(carry) > 0 {
				n.HeadComment = commentText(append(carry, s.comments...))
			}
			carry = s.pending
			stages.Content = append(stages.Content, n)
		}
		put(doc, "stages", stages)
	}
	// Comments after the last step of the last stage (HEALTHCHECK, ...)
	// go above image:, else at the end.
	last := c.stages[len(c.stages)-1]
	if img := c.imageNode(last); img != nil {
		put(doc, "image", img)
		if len(last.pending) > 0 {
			doc.Content[len(doc.Content)-2].HeadComment = commentText(last.pending)
		}
	} else if len(last.pending) > 0 {
		doc.FootComment = commentText(last.pending)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{doc}}); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// argsNode is the recipe's args: an arg without a default gets "" as
// docker gives it, unless FROM uses it (then it must be given).
func (c *converter) argsNode() *yaml.Node {
	if len(c.args) == 0 {
		return nil
	}
	n := &yaml.Node{Kind: yaml.MappingNode}
	for _, a := range c.args {
		switch {
		case a.def != nil:
			put(n, a.name, str(*a.def))
		case a.fromUse:
			put(n, a.name, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: ""})
			c.warnf(a.line, "ARG %s has no default and a FROM uses it: give it with --build-arg %s=VALUE", a.name, a.name)
		default:
			put(n, a.name, str(""))
		}
	}
	return n
}

func (c *converter) stageNode(s *stageOut) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	if s.name != "" {
		put(n, "name", str(s.name))
	}
	put(n, "from", str(s.from))
	if s.platform != "" {
		put(n, "platform", str(s.platform))
	}
	if s.shell != nil {
		put(n, "shell", strList(s.shell...))
	}
	if len(s.steps) > 0 {
		put(n, "steps", c.stepsNode(s))
	}
	if len(s.comments) > 0 {
		n.HeadComment = commentText(s.comments)
	}
	return n
}

// stepsNode is a stage's steps. The comments left after its last step
// (s.pending) go above what follows the stage.
func (c *converter) stepsNode(s *stageOut) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Content: s.steps}
	if len(s.steps) == 0 {
		n.Style = yaml.FlowStyle
	}
	return n
}

// imageNode is the image: section from the final stage's config.
func (c *converter) imageNode(s *stageOut) *yaml.Node {
	ic := s.cfg
	n := &yaml.Node{Kind: yaml.MappingNode}
	if ic.entrypointSet {
		put(n, "entrypoint", strList(ic.entrypoint...))
	}
	if ic.cmdSet {
		put(n, "cmd", strList(ic.cmd...))
	}
	if len(ic.labelKeys) > 0 {
		var pairs []string
		for _, k := range ic.labelKeys {
			pairs = append(pairs, k, ic.labels[k])
		}
		put(n, "labels", strMap(pairs...))
	}
	if len(ic.expose) > 0 {
		put(n, "expose", strList(ic.expose...))
	}
	if len(ic.volumes) > 0 {
		put(n, "volumes", strList(ic.volumes...))
	}
	if ic.stopSignal != "" {
		put(n, "stop-signal", str(ic.stopSignal))
	}
	if ic.shell != nil {
		c.warnf(ic.shellLine, "SHELL %s applies to the run steps; docker also records it in the image config, which strata does not", quoteList(ic.shell))
	}
	if len(n.Content) == 0 {
		return nil
	}
	return n
}
