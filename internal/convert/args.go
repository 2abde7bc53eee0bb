package convert

import "github.com/moby/buildkit/frontend/dockerfile/instructions"

// stageArg translates an ARG inside a stage: an arg of the recipe, in
// scope for the stage's values and given to its run steps' env.
func (c *converter) stageArg(s *stageOut, cmd *instructions.ArgCommand) {
	ln := line(cmd)
	for _, kv := range cmd.Args {
		if kv.Value == nil {
			_, global := c.meta[kv.Key]
			switch {
			case isPredefined(kv.Key):
				// docker gives it the value strata does.
			case c.metaSet[kv.Key]:
				// docker gives it the global ARG's value, as strata does.
				c.argGives(s, ln, kv.Key, c.meta[kv.Key])
			case contains(s.args, kv.Key):
				// In scope already: docker leaves its value as it is.
			case c.stageDef[kv.Key]:
				s.unset[kv.Key] = true
				c.declareArg(kv.Key, nil, ln)
				c.warnf(ln, "ARG %s has no default in this stage: docker gives it \"\" here unless a --build-arg sets it, but strata's args are one per recipe and another stage gives %s a default; written as \"\" in this stage (a --build-arg %s does not reach it)", kv.Key, kv.Key, kv.Key)
			default:
				if !global {
					c.declareArg(kv.Key, nil, ln)
				}
				c.argNoDefault(s, ln, kv.Key)
			}
		} else {
			delete(s.unset, kv.Key)
			val := c.argDefault(ln, kv.Key, *kv.Value, c.vars(s))
			if c.metaSet[kv.Key] {
				c.warnf(ln, "ARG %s gives a default of its own in this stage; strata's args are one per recipe: the global default applies", kv.Key)
			}
			c.declareArg(kv.Key, &val, ln)
			if !isPredefined(kv.Key) {
				c.argGives(s, ln, kv.Key, val)
			}
		}
		if !contains(s.args, kv.Key) {
			s.args = append(s.args, kv.Key)
		}
	}
	s.comment(cmd.Comments()...)
}

// argGives records an ARG that gives name the value val: docker sets it
// for the RUNs and values after it, over an ENV of the name before it.
// strata's ${NAME} gives the env step's value over the arg's, so the
// recipe then writes val itself where the stage uses the name.
func (c *converter) argGives(s *stageOut, ln int, name, val string) {
	s.argSet[name] = val
	if _, shadowed := c.argShadowed(s, name); shadowed {
		c.warnf(ln, "ARG %s follows ENV %s (line %d): docker's RUN and later values of the stage see the ARG's %q, the image config the ENV's value; strata's env steps win over args, so the recipe's steps get %q written out where they use $%s, which a --build-arg %s does not change", name, name, s.envLine[name], val, val, name, name)
	}
}

// argNoDefault reports an ARG without a value. docker sets the name for
// RUN only when a --build-arg gives it, else leaves it as it was (an
// ENV's or the base image's value, or unset); strata cannot set a
// variable only when a build arg is given.
func (c *converter) argNoDefault(s *stageOut, ln int, name string) {
	if a := c.argIndex[name]; a != nil && a.fromUse {
		return // a FROM uses it: it must be given, in docker as in strata
	}
	if envLn, ok := s.envLine[name]; ok {
		if s.envArg[name] {
			return // the ENV's value is the arg's, build arg included
		}
		c.warnf(ln, "ARG %s has no default and follows ENV %s (line %d): the run steps get the ENV's value, as in docker without --build-arg %s; but strata's env steps win over args, so a --build-arg %s does not reach them, where docker's does", name, name, envLn, name, name)
		return
	}
	c.warnf(ln, "ARG %s has no default: without --build-arg %s, docker leaves $%s as it was for RUN (unset, or the base image's value); strata's args need a value: the recipe gives %s \"\", set even where the base image's env has a value for it", name, name, name, name)
}

// argShadowed says whether docker gives name the value of an ARG where
// strata's ${NAME} gives an env step's: an ARG with a value came after an
// ENV of the name that did not set it to that arg's value (ENV V=$V
// after ARG V, the same default). It returns the ARG's value.
func (c *converter) argShadowed(s *stageOut, name string) (string, bool) {
	val, over := s.argSet[name]
	if _, env := s.env[name]; !over || !env {
		return "", false
	}
	if s.envArg[name] && val == c.argValue(name) {
		return "", false
	}
	return val, true
}
