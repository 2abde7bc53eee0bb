package recipe

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestTrie checks the persistent trie against a map, with forced hash
// collisions and near-collisions, and that an old version stays as it was.
func TestTrie(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	hashOf := map[string]uint64{}
	hashes := []uint64{0, 1, 1 << 60, 1<<60 | 1, 31, 32, 0xffffffffffffffff}
	var versions []*trie
	var wants []map[string]value
	var cur *trie
	want := map[string]value{}
	for i := range 2000 {
		name := fmt.Sprintf("N%d", rng.IntN(500))
		h := nameHash(name)
		if i%3 == 0 {
			h = hashes[len(name)%len(hashes)] // many names, one hash
		}
		v := value{s: fmt.Sprint(i), known: i%2 == 0}
		// A name keeps the hash it was first given.
		if old, ok := hashOf[name]; ok {
			h = old
		}
		hashOf[name] = h
		cur = cur.with(h, 0, trieEntry{name: name, v: v})
		want[name] = v
		if i%100 == 0 {
			snap := map[string]value{}
			for k, v := range want {
				snap[k] = v
			}
			versions, wants = append(versions, cur), append(wants, snap)
		}
	}
	versions, wants = append(versions, cur), append(wants, want)
	for vi, tr := range versions {
		n := 0
		tr.each(func(e trieEntry) {
			n++
			if w, ok := wants[vi][e.name]; !ok || w != e.v {
				t.Errorf("version %d: each gave %s=%v, want %v (present %v)", vi, e.name, e.v, w, ok)
			}
		})
		if n != len(wants[vi]) {
			t.Errorf("version %d: each gave %d entries, want %d", vi, n, len(wants[vi]))
		}
		for name, w := range wants[vi] {
			if got, ok := tr.get(hashOf[name], name); !ok || got != w {
				t.Errorf("version %d: get(%s) = %v, %v; want %v", vi, name, got, ok, w)
			}
		}
		if _, ok := tr.get(hashOf["N1"], "absent"); ok {
			t.Errorf("version %d: get(absent) found something", vi)
		}
	}
}

// A scope set from another leaves it as it was: a run step's own env does
// not leak into the steps after it.
func TestScopeSetKeepsOld(t *testing.T) {
	base := &scope{vars: map[string]value{"A": {s: "a", known: true}}}
	one := base.set([]EnvVar{{Name: "B", Value: "b"}}, []bool{true})
	two := one.set([]EnvVar{{Name: "A", Value: "A2"}, {Name: "C", Value: "c"}}, []bool{true, false})
	for _, tc := range []struct {
		sc        *scope
		name      string
		want      value
		wantFound bool
	}{
		{base, "A", value{s: "a", known: true}, true},
		{base, "B", value{}, false},
		{one, "A", value{s: "a", known: true}, true},
		{one, "B", value{s: "b", known: true}, true},
		{one, "C", value{}, false},
		{two, "A", value{s: "A2", known: true}, true},
		{two, "C", value{s: "c"}, true},
	} {
		if got, found := tc.sc.lookup(tc.name); got != tc.want || found != tc.wantFound {
			t.Errorf("lookup(%s) = %v, %v; want %v, %v", tc.name, got, found, tc.want, tc.wantFound)
		}
	}
	c := two.clone()
	if len(c.vars) != 3 || c.vars["A"].s != "A2" || c.added != nil {
		t.Errorf("clone = %v, want the 3 variables flat", c.vars)
	}
}

// TestManyEnvVarsLinear decodes 20,000 env vars in the shapes that were
// quadratic: one env mapping (mergeEnv), one env step each (a scope copy
// per step), and each referring to an unknown name (a "did you mean" over
// every variable per reference). Each took from 9 s to over 40 s; now well
// under a second (see the log).
func TestManyEnvVarsLinear(t *testing.T) {
	const n = 20000
	var mapping, steps, refs strings.Builder
	mapping.WriteString("from: scratch\nenv:\n")
	steps.WriteString("from: scratch\nsteps:\n")
	refs.WriteString("from: busybox\nsteps:\n")
	for i := range n {
		fmt.Fprintf(&mapping, "  V%d: x%d\n", i, i)
		fmt.Fprintf(&steps, "  - env: {V%d: \"x${V%d}\"}\n", i, max(i-1, 0)/2*2)
		fmt.Fprintf(&refs, "  - env: {V%d: \"${U%d}x\"}\n", i, i)
	}
	for _, tc := range []struct{ name, src string }{
		{"one mapping", mapping.String() + "steps: [run: \"echo $V19999\"]\n"},
		{"one step each", "args: {V0: a}\n" + steps.String()},
		{"unknown references", refs.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r, err := Parse("strata.yaml", []byte(tc.src))
			elapsed := time.Since(start)
			t.Logf("%d env vars, %s: %s", n, tc.name, elapsed.Round(time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Stages) != 1 {
				t.Fatalf("%d stages, want 1", len(r.Stages))
			}
			if elapsed > 5*time.Second {
				t.Errorf("decoding %d env vars (%s) took %s, want well under 5 s", n, tc.name, elapsed)
			}
		})
	}
}
