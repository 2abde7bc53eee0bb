// Package cache is strata's build cache: a key per step computed from
// exactly what determines the step's result, an index of committed results
// under the state root, the explanation of a miss, and pruning.
//
// Keys chain on the parent's result — the diffIDs of every layer below —
// not on the parent's key, so a step that re-runs and produces a
// byte-identical layer leaves every later step cached (early cutoff).
//
// Input: Inputs per step. Output: Entries in an Index (one JSON file per
// key under <root>/cache/index), and explanations for progress.
package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Inputs is everything that determines a step's result, plus what explains
// a miss. Fields marked "explanation only" are not part of the key.
type Inputs struct {
	// StepID names "the same step" across builds: FILE:STAGE:INDEX
	// (explanation only).
	StepID string `json:"step_id"`
	// Parent is the diffIDs of every layer below the step, bottom first.
	Parent []string `json:"parent"`
	// Env, User, Workdir and Shell are the config state before the step.
	Env     []string `json:"env"`
	User    string   `json:"user"`
	Workdir string   `json:"workdir"`
	Shell   []string `json:"shell"`
	// Step is the canonical, expanded step definition.
	Step string `json:"step"`
	// Files maps each input of a copy from the build context (relative,
	// slash-separated) to the digest of its content (see HashFiles).
	Files map[string]string `json:"files,omitempty"`
	// Args are the recipe's args and their values (explanation only: the
	// step text already carries what the step used).
	Args map[string]string `json:"args,omitempty"`
	// Base is the base image's digest (explanation only: Parent covers
	// its layers).
	Base string `json:"base,omitempty"`
}

// keyVersion changes whenever the key's encoding or meaning changes, so
// that old entries simply miss.
const keyVersion = "strata-cache-v1"

// Key is the step's cache key, "sha256:<hex>".
func (in *Inputs) Key() string {
	h := sha256.New()
	w := func(tag string, vals ...string) {
		fmt.Fprintf(h, "%s %d\n", tag, len(vals))
		for _, v := range vals {
			fmt.Fprintf(h, "%d:%s\n", len(v), v)
		}
	}
	w(keyVersion)
	w("parent", in.Parent...)
	w("env", in.Env...)
	w("user", in.User)
	w("workdir", in.Workdir)
	w("shell", in.Shell...)
	w("step", in.Step)
	files := make([]string, 0, len(in.Files))
	for p, d := range in.Files {
		files = append(files, p+"\x00"+d)
	}
	sort.Strings(files)
	w("files", files...)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// HashFiles hashes copy inputs below root, paths being relative and
// slash-separated. A file's digest covers its type, whether any exec bit
// is set, its content or symlink target, and for a directory the names of
// its entries — never mtimes, other mode bits or owners, which differ
// between checkouts of the same commit.
func HashFiles(root string, paths []string) (map[string]string, error) {
	out := make(map[string]string, len(paths))
	for _, p := range paths {
		full := filepath.Join(root, filepath.FromSlash(p))
		fi, err := os.Lstat(full)
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		switch m := fi.Mode(); {
		case m.IsRegular():
			fmt.Fprintf(h, "file exec=%t\n", m.Perm()&0o111 != 0)
			f, err := os.Open(full)
			if err != nil {
				return nil, err
			}
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("hashing %s: %w", p, err)
			}
		case m&fs.ModeSymlink != 0:
			target, err := os.Readlink(full)
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(h, "symlink\n%s", target)
		case m.IsDir():
			entries, err := os.ReadDir(full)
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(h, "dir\n")
			for _, e := range entries {
				fmt.Fprintf(h, "%s\n", e.Name())
			}
		default:
			fmt.Fprintf(h, "special %v\n", m.Type())
		}
		out[p] = "sha256:" + hex.EncodeToString(h.Sum(nil))
	}
	return out, nil
}

// Layer is a committed layer blob, and what the step changed in it.
type Layer struct {
	DiffID    string `json:"diff_id"`
	Digest    string `json:"digest"`
	MediaType string `json:"media_type"`
	Size      int64  `json:"size"`
	Added     int    `json:"added"`
	Modified  int    `json:"modified"`
	Deleted   int    `json:"deleted"`
}

// Entry is one cached step result.
type Entry struct {
	Key    string `json:"key"`
	Inputs Inputs `json:"inputs"`
	// Layer is nil when the step changed no file.
	Layer   *Layer    `json:"layer,omitempty"`
	Created time.Time `json:"created"`
	// LastUsed is when a build last hit (or made) the entry.
	LastUsed time.Time `json:"last_used"`
}

// Explain says why in missed, given the nearest earlier entry for the same
// step (nil if there is none).
func Explain(in *Inputs, prev *Entry) string {
	if prev == nil {
		return "no earlier build of this step"
	}
	p := &prev.Inputs
	var why []string
	if in.Base != p.Base && p.Base != "" {
		why = append(why, fmt.Sprintf("base changed: %s → %s", short(p.Base), short(in.Base)))
	}
	if in.Step != p.Step {
		why = append(why, fmt.Sprintf("step text changed: %s → %s", quoteShort(p.Step), quoteShort(in.Step)))
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
