package recipe

import "testing"

// TestSyntaxErrorLine: a YAML syntax error is reported at the line that
// holds the problem — a tab in an indentation, an entry or a key indented
// wrongly — not at the line yaml.v3 names (the scalar or the sequence it
// was in).
func TestSyntaxErrorLine(t *testing.T) {
	for _, tt := range []struct {
		name, yaml, want string
	}{
		{"tab after a scalar", "from: scratch\nsteps:\n  - file: /a\n    content: x\n\t- file: /b\n    content: y\n",
			"strata.yaml:5:1: invalid YAML: found a tab character that violates indentation (YAML is indented with spaces only)"},
		{"tab before a key", "from: scratch\nsteps:\n  - file: /a\n  \tcontent: x\n",
			"strata.yaml:4:3: invalid YAML: found a tab character that violates indentation (YAML is indented with spaces only)"},
		{"tab after legal tabs", "from: scratch\nsteps:\n  - file: /a\n    content: x\n         \tmore\n\t- file: /b\n",
			"strata.yaml:6:1: invalid YAML: found a tab character that violates indentation (YAML is indented with spaces only)"},
		{"tab in a block scalar", "from: scratch\nsteps:\n  - file: /a\n    content: |\n      x\n      \ty\n\t  z\n",
			"strata.yaml:7:1: invalid YAML: found a tab character where an indentation space is expected (YAML is indented with spaces only)"},
		{"tab at the top", "from: scratch\nsteps:\n\t- run: make\n",
			"strata.yaml:3:1: invalid YAML: found character that cannot start any token (a tab: YAML is indented with spaces only)"},
		{"entry indented too much", "from: scratch\nsteps:\n  - file: /a\n    content: x\n   - file: /b\n",
			"strata.yaml:5:4: invalid YAML: did not find expected '-' indicator"},
		{"key indented too little", "from: scratch\nsteps:\n  - file: /a\n    content: x\n  mode: \"0644\"\n",
			"strata.yaml:5:3: invalid YAML: did not find expected '-' indicator"},
		{"mapping key indented too little", "image:\n  labels:\n    a: b\n   c: d\nfrom: scratch\n",
			"strata.yaml:4:4: invalid YAML: did not find expected key"},
		{"entry indented too little", "from: scratch\nsteps:\n  - run: make\n -  run: x\n",
			"strata.yaml:4:2: invalid YAML: did not find expected key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("strata.yaml", []byte(tt.yaml))
			if err == nil || err.Error() != tt.want {
				t.Errorf("Parse(%q) = %v, want %s", tt.yaml, err, tt.want)
			}
		})
	}
}
