package cache

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Explain says why in missed, given the nearest earlier entry for the same
// step (nil if there is none).
func Explain(in *Inputs, prev *Entry) string {
	if prev == nil {
		return "no earlier build of this step"
	}
	if prev.KeyVersion != keyVersion {
		// Its inputs were recorded otherwise: comparing them would
		// name changes the recipe never had.
		return "the last build of this step was another strata version's, whose cache entries this one does not use"
	}
	p := &prev.Inputs
	var why []string
	if in.Base != p.Base && p.Base != "" {
		why = append(why, fmt.Sprintf("base changed: %s → %s", short(p.Base), short(in.Base)))
	}
	if in.Step != p.Step {
		why = append(why, stepChanged(p.Step, in.Step))
	}
	for _, name := range sortedKeys(in.Args, p.Args) {
		if a, b := p.Args[name], in.Args[name]; a != b {
			why = append(why, fmt.Sprintf("arg %s: %q → %q", name, a, b))
		}
	}
	oldEnv, newEnv := envMap(p.Env), envMap(in.Env)
	for _, name := range sortedKeys(oldEnv, newEnv) {
		if oldEnv[name] != newEnv[name] {
			why = append(why, fmt.Sprintf("env %s changed", name))
		}
	}
	if in.User != p.User {
		why = append(why, fmt.Sprintf("user: %q → %q", p.User, in.User))
	}
	if in.Workdir != p.Workdir {
		why = append(why, fmt.Sprintf("workdir: %q → %q", p.Workdir, in.Workdir))
	}
	if strings.Join(in.Shell, "\x00") != strings.Join(p.Shell, "\x00") {
		why = append(why, fmt.Sprintf("shell: %q → %q", p.Shell, in.Shell))
	}
	if f := filesChanged(p.Files, in.Files); f != "" {
		why = append(why, f)
	}
	if strings.Join(in.Parent, ",") != strings.Join(p.Parent, ",") && in.Base == p.Base {
		why = append(why, "parent layers changed (an earlier step's result differs)")
	} else if strings.Join(in.Parent, ",") != strings.Join(p.Parent, ",") && len(why) == 0 {
		why = append(why, "parent layers changed")
	}
	if len(why) == 0 {
		return "inputs unchanged, but no cached result (pruned, or made with other options)"
	}
	return strings.Join(why, "; ")
}

func filesChanged(old, cur map[string]string) string {
	var changed, added, removed []string
	for p, d := range cur {
		switch o, ok := old[p]; {
		case !ok:
			added = append(added, p)
		case o != d:
			changed = append(changed, p)
		}
	}
	for p := range old {
		if _, ok := cur[p]; !ok {
			removed = append(removed, p)
		}
	}
	if len(changed)+len(added)+len(removed) == 0 {
		return ""
	}
	sort.Strings(changed)
	sort.Strings(added)
	sort.Strings(removed)
	var parts []string
	if len(changed) > 0 {
		parts = append(parts, "changed: "+listShort(changed))
	}
	if len(added) > 0 {
		parts = append(parts, "added: "+listShort(added))
	}
	if len(removed) > 0 {
		parts = append(parts, "removed: "+listShort(removed))
	}
	return "files " + strings.Join(parts, ", ")
}

func listShort(ps []string) string {
	if len(ps) > 5 {
		return strings.Join(ps[:5], ", ") + fmt.Sprintf(" (+%d more)", len(ps)-5)
	}
	return strings.Join(ps, ", ")
}

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func sortedKeys(a, b map[string]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range []map[string]string{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19] + "…"
	}
	return d
}

func quoteShort(s string) string {
	var step struct {
		Text string `json:"text"`
	}
	if json.Unmarshal([]byte(s), &step) == nil && step.Text != "" {
		s = step.Text
	}
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// stepChanged says what differs between two steps' definitions: the text
// as written, else the fields that changed (a copy's source stage, the
// platform, the epoch, ...).
func stepChanged(old, cur string) string {
	if a, b := quoteShort(old), quoteShort(cur); a != b {
		return fmt.Sprintf("step text changed: %s → %s", a, b)
	}
	var o, c map[string]any
	if json.Unmarshal([]byte(old), &o) != nil || json.Unmarshal([]byte(cur), &c) != nil {
		return "step changed"
	}
	var fields []string
	for _, k := range sortedKeys(toStrings(o), toStrings(c)) {
		if fmt.Sprint(o[k]) != fmt.Sprint(c[k]) {
			fields = append(fields, describeField(k, o[k], c[k]))
		}
	}
	return strings.Join(fields, "; ")
}

func describeField(k string, old, cur any) string {
	switch k {
	case "from":
		return "what it copies from changed (an earlier stage's result, or the image, differs)"
	case "platform", "epoch", "compression":
		return fmt.Sprintf("%s: %v → %v", k, orNone(old), orNone(cur))
	}
	return k + " changed"
}

func orNone(v any) any {
	if v == nil {
		return "none"
	}
	return v
}

func toStrings(m map[string]any) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = fmt.Sprint(v)
	}
	return out
}
