package convert

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Marks around a variable name in a word processed by docker's lexer: the
// lexer keeps them as they are, and they become strata's ${NAME} once the
// literal text around them is escaped.
const markOpen, markClose = "\uE000", "\uE001"

// modifierRe finds a ${NAME<op>...} substitution (default, alternative,
// error, prefix or suffix removal), which strata cannot express.
var modifierRe = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-+?]|#|%)`)

// vars is what names mean where a word is expanded: the names docker
// knows there, with their values as far as the Dockerfile tells them.
type vars struct {
	// known are the ARGs and ENVs in scope, with the value docker gives
	// them by default ("" when it depends on a build arg or the base).
	known map[string]string
	// open is true when the stage's base is an image: a name the
	// Dockerfile does not define may come from the image's env.
	open bool
	// elsewhere are ARGs declared out of this scope (a global ARG not
	// declared again in the stage): docker expands them to "".
	elsewhere map[string]bool
	// env are the names of known that an ENV defines (an ENV wins over
	// an ARG of the same name).
	env map[string]bool
	// image: the word goes to strata's image: section, which sees the
	// args but not the steps' env: ENV names are written as their values.
	image bool
	// literal are the names of known written as their values wherever
	// they are used (an ARG strata cannot give docker's value).
	literal map[string]bool
}

// getter is the lexer's view of vars. In static mode it gives values,
// else marks.
type getter struct {
	v       vars
	static  bool
	missing map[string]bool
	// inlined are the ENV names written as their values (image mode).
	inlined map[string]bool
	// fromBase are the names the Dockerfile does not set, left to the
	// base image's env.
	fromBase map[string]bool
}

func (g *getter) Get(name string) (string, bool) {
	if val, ok := g.v.known[name]; ok {
		if g.static || g.v.literal[name] {
			return val, true
		}
		if g.v.image && g.v.env[name] {
			g.inlined[name] = true
			return val, true
		}
		return markOpen + name + markClose, true
	}
	if g.v.open && !g.v.elsewhere[name] && !g.static && !g.v.image {
		g.fromBase[name] = true
		return markOpen + name + markClose, true
	}
	g.missing[name] = true
	return "", false
}

func (g *getter) Keys() []string { return sortedKeys(g.v.known) }

// word translates a value docker expands (ENV, LABEL, COPY paths,
// WORKDIR, USER, FROM, ...) into a strata value: quotes and escapes
// processed as docker does, every variable that docker would take from
// an ARG, an ENV or the base image written ${NAME}, and literal "${"
// escaped as "$${". A ${NAME:-default} (and the other operators) has no
// strata form: the word is then evaluated with the values the Dockerfile
// gives, and a warning says so.
func (c *converter) word(line int, w string, v vars) string {
	static := modifierRe.MatchString(w)
	g := &getter{v: v, static: static, missing: map[string]bool{}, inlined: map[string]bool{}, fromBase: map[string]bool{}}
	out, _, err := c.lex.ProcessWord(w, g)
	shown := strings.Trim(w, `"'`)
	if err != nil {
		c.warnf(line, "cannot expand %s as docker does (%v); kept as written", shown, err)
		return escapeDollar(w)
	}
	if static {
		c.warnf(line, "%s uses a ${NAME:...} operator, which strata does not have; written as its value with the Dockerfile's defaults, %q (a --build-arg does not change it)", shown, out)
	}
	for _, name := range sortedKeys(g.inlined) {
		c.warnf(line, "$%s is an ENV, which strata's image: section does not see; written as its value, %q", name, v.known[name])
	}
	for _, name := range sortedKeys(g.fromBase) {
		// Nearly every base image sets PATH: not worth a warning.
		if name != "PATH" {
			c.warnf(line, "$%s is not set in the Dockerfile: strata takes it from the base image's env and stops the build if the base image does not set it, where docker gives \"\" (declare it with ARG %s= if the base image may not set it)", name, name)
		}
	}
	for _, name := range sortedKeys(g.missing) {
		switch {
		case v.elsewhere[name]:
			c.warnf(line, "$%s is empty here in docker: ARG %s is declared, but not in this stage (declare it again with ARG %s after FROM); converted as empty", name, name, name)
		case v.open && (static || v.image):
			c.warnf(line, "$%s may come from the base image's env, which the conversion cannot see; taken as empty", name)
		}
	}
	return fromMarks(escapeDollar(out))
}

// key translates an ENV or LABEL key (what): docker expands its
// variables, strata never expands keys, so they are evaluated now, with
// the values the Dockerfile gives them, and the key is written as is (a
// literal "${" is not escaped). ok is false for a key that expands to
// nothing, which is left out.
func (c *converter) key(line int, what, w string, v vars) (k string, ok bool) {
	g := &getter{v: v, static: true, missing: map[string]bool{}}
	res, err := c.lex.ProcessWordWithMatches(w, g)
	shown := strings.Trim(w, `"'`)
	if err != nil {
		c.warnf(line, "cannot expand the %s name %s as docker does (%v); kept as written", what, shown, err)
		return w, true
	}
	if len(res.Matched) > 0 || len(res.Unmatched) > 0 {
		c.warnf(line, "the %s name %s has variables, which strata does not expand in names; written as its value with the Dockerfile's defaults, %q (a --build-arg does not change it)", what, shown, res.Result)
	}
	if res.Result == "" {
		c.warnf(line, "the %s name %s is empty in docker; left out", what, shown)
		return "", false
	}
	return res.Result, true
}

// fromMarks turns the marks around names into ${NAME}.
func fromMarks(s string) string {
	if !strings.Contains(s, markOpen) {
		return s
	}
	s = strings.ReplaceAll(s, markOpen, "${")
	return strings.ReplaceAll(s, markClose, "}")
}

// escapeDollar escapes a literal "${" for strata, which would expand it.
// A "$" not followed by "{" is literal in strata already.
func escapeDollar(s string) string { return strings.ReplaceAll(s, "${", "$${") }

// words translates each of ws.
func (c *converter) words(line int, ws []string, v vars) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = c.word(line, w, v)
	}
	return out
}

// staticValue is what docker gives w by default: the value used for
// later ${NAME:-...} evaluations.
func (c *converter) staticValue(w string, v vars) string {
	g := &getter{v: v, static: true, missing: map[string]bool{}}
	out, _, err := c.lex.ProcessWord(w, g)
	if err != nil {
		return ""
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// quoteList prints a command as docker's exec form.
func quoteList(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = fmt.Sprintf("%q", a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
