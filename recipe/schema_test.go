package recipe

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// schemaFile is the schema the repository ships; regenerate it with
// go test ./recipe -run TestSchemaFile -update.
const schemaFile = "../docs/schema/strata.schema.json"

func TestSchemaFile(t *testing.T) {
	got := Schema()
	if *update {
		if err := os.MkdirAll(filepath.Dir(schemaFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(schemaFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatalf("%v (run go test ./recipe -run TestSchemaFile -update)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s is not recipe.Schema() (regenerate: go test ./recipe -run TestSchemaFile -update) (-want +got):\n%s", schemaFile, diff)
	}
}

// schemaJSON is Schema() decoded.
func schemaJSON(t *testing.T) map[string]any {
	t.Helper()
	var s map[string]any
	if err := json.Unmarshal(Schema(), &s); err != nil {
		t.Fatalf("Schema() is not JSON: %v", err)
	}
	return s
}

// at follows a path of object keys in a decoded JSON value.
func at(t *testing.T, v any, path ...string) any {
	t.Helper()
	for i, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("schema at %s is %T, not an object", strings.Join(path[:i], "."), v)
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("schema has no %s", strings.Join(path[:i+1], "."))
		}
	}
	return v
}

func keysOf(t *testing.T, v any) []string {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("want an object, got %T", v)
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func strList(t *testing.T, v any) []string {
	t.Helper()
	list, ok := v.([]any)
	if !ok {
		t.Fatalf("want a list, got %T", v)
	}
	var out []string
	for _, x := range list {
		out = append(out, x.(string))
	}
	return out
}

// TestSchemaKeysMatchLoader walks the schema and the loader's key lists
// both ways: every mapping the schema describes has exactly the keys the
// loader allows there, every mapping with properties in the schema is one
// the loader decodes, and each step branch allows exactly its kind's keys.
func TestSchemaKeysMatchLoader(t *testing.T) {
	s := schemaJSON(t)
	mappings := map[string][]string{
		"(top)":       topKeys,
		"$defs.stage": stageKeys,
		"$defs.step":  allStepKeys,
		"$defs.mount": mountKeys,
		"$defs.image": imageKeys,
	}
	// Schema → loader: every "properties" in the schema is a known mapping.
	seen := map[string]bool{}
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch v := v.(type) {
		case map[string]any:
			if p, ok := v["properties"]; ok && v["additionalProperties"] == false {
				name := strings.TrimPrefix(path, ".")
				if name == "" {
					name = "(top)"
				}
				want, known := mappings[name]
				if !known {
					t.Errorf("the schema describes a mapping at %s that the loader has no key list for", name)
				} else if diff := cmp.Diff(sortedCopy(want), keysOf(t, p)); diff != "" {
					t.Errorf("schema keys at %s differ from the loader's (-loader +schema):\n%s", name, diff)
				}
				seen[name] = true
			}
			for k, x := range v {
				walk(x, path+"."+k)
			}
		case []any:
			for _, x := range v {
				walk(x, path+"[]")
			}
		}
	}
	walk(s, "")
	// Loader → schema: every key list has its mapping in the schema.
	for name, keys := range mappings {
		if !seen[name] {
			t.Errorf("the loader's keys %v have no mapping %s in the schema", keys, name)
		}
	}
	// Each step branch: one per kind, its action required, its kind's keys.
	branches := at(t, s, "$defs", "step", "oneOf").([]any)
	if len(branches) != len(stepKindNames) {
		t.Fatalf("step has %d branches, want one per kind (%d)", len(branches), len(stepKindNames))
	}
	for i, b := range branches {
		kind := StepKind(i)
		if got := strList(t, at(t, b, "propertyNames", "enum")); !cmp.Equal(got, stepKeys[kind]) {
			t.Errorf("%s step branch allows %v, the loader %v", kind, got, stepKeys[kind])
		}
		req := strList(t, at(t, b, "required"))
		if req[0] != kind.String() || !contains(actionKeys, req[0]) {
			t.Errorf("%s step branch requires %v, want the action %q first", kind, req, kind)
		}
		var loaderReq []string
		for _, rk := range stepRequired[kind] {
			loaderReq = append(loaderReq, rk.key)
		}
		if strings.Join(req[1:], ",") != strings.Join(loaderReq, ",") {
			t.Errorf("%s step branch requires %v besides its action, the loader %v", kind, req[1:], loaderReq)
		}
	}
	// Enumerations.
	if got := strList(t, at(t, at(t, s, "$defs", "step", "properties", "network", "anyOf").([]any)[0], "enum")); !cmp.Equal(got, enumStrings(networks)) {
		t.Errorf("network enum %v, loader %v", got, networks)
	}
	if got := strList(t, at(t, at(t, s, "$defs", "mount", "properties", "type", "anyOf").([]any)[0], "enum")); !cmp.Equal(got, enumStrings(mountTypes)) {
		t.Errorf("mount type enum %v, loader %v", got, mountTypes)
	}
}

// compileSchema compiles Schema() with a real JSON Schema validator.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource("strata.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("strata.schema.json")
	if err != nil {
		t.Fatalf("compiling the schema: %v", err)
	}
	return sch
}

// yamlValue reads the first YAML document of file as a JSON value, as an
// editor's YAML language server hands it to the schema.
func yamlValue(t *testing.T, data []byte) (any, error) {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(j))
}

func validateFile(t *testing.T, sch *jsonschema.Schema, file string) error {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	v, err := yamlValue(t, data)
	if err != nil {
		t.Fatalf("reading %s as YAML: %v", file, err)
	}
	return sch.Validate(v)
}

// TestSchemaValidatesRecipes checks that every example, every valid
// testdata recipe and every recipe `strata convert` made of the corpus
// (testdata/dockerfiles) passes the schema.
func TestSchemaValidatesRecipes(t *testing.T) {
	sch := compileSchema(t)
	examples, _ := filepath.Glob("../examples/*/strata.yaml")
	valid, _ := filepath.Glob("testdata/valid/*.yaml")
	converted, _ := filepath.Glob("../testdata/dockerfiles/*/strata.yaml")
	if len(examples) < 3 || len(valid) == 0 || len(converted) < 10 {
		t.Fatalf("found %d examples, %d valid testdata recipes and %d converted Dockerfiles", len(examples), len(valid), len(converted))
	}
	for _, f := range append(append(examples, valid...), converted...) {
		t.Run(f, func(t *testing.T) {
			if _, err := Load(f, WithContext(filepath.Join(filepath.Dir(f), "context"))); err != nil {
				t.Fatalf("the loader rejects %s:\n%v", f, err)
			}
			if err := validateFile(t, sch, f); err != nil {
				t.Errorf("the schema rejects %s, which the loader takes:\n%v", f, err)
			}
		})
	}
}

// The invalid testdata recipes by why they are invalid. Every
// testdata/*.yaml must be in exactly one list.
var (
	// structural: an unknown key, a wrong type, a missing action, two
	// actions, a missing required key, a bad enumeration value or name.
	// The schema rejects each.
	structuralTestdata = []string{
		"bad-step-values", "empty", "file-step", "five-mistakes", "missing-action",
		"multi-errors", "two-actions", "unknown-keys", "wrong-types",
	}
	// semantic: values checked with the recipe's context (references,
	// paths, modes, owners, ports, signals, ${NAME}, cycles). The schema
	// takes them; strata validate does not.
	semanticTestdata = []string{
		"bad-values", "copy-outside", "mode-owner", "signal-port", "stage-cycle",
		"undefined-var", "unknown-stage",
	}
	// yamlTestdata: not one well-formed YAML document, so there is no
	// value for a schema to check (the YAML parser rejects them first).
	yamlTestdata = []string{"control-char", "duplicate-keys", "invalid-utf8", "two-documents", "yaml-flow", "yaml-syntax", "yaml-tabs"}
)

func TestSchemaRejectsStructuralTestdata(t *testing.T) {
	sch := compileSchema(t)
	files, _ := filepath.Glob("testdata/*.yaml")
	all := map[string]int{}
	for _, list := range [][]string{structuralTestdata, semanticTestdata, yamlTestdata} {
		for _, n := range list {
			all[n]++
		}
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		if all[name] != 1 {
			t.Errorf("testdata/%s.yaml is in %d of the lists structural, semantic and yaml; put it in one", name, all[name])
		}
		delete(all, name)
	}
	for name := range all {
		t.Errorf("listed testdata %q has no file", name)
	}
	for _, name := range structuralTestdata {
		t.Run(name, func(t *testing.T) {
			if err := validateFile(t, sch, "testdata/"+name+".yaml"); err == nil {
				t.Errorf("the schema accepts testdata/%s.yaml, which has structural errors", name)
			}
		})
	}
	for _, name := range semanticTestdata {
		t.Run(name, func(t *testing.T) {
			if err := validateFile(t, sch, "testdata/"+name+".yaml"); err != nil {
				t.Errorf("the schema rejects testdata/%s.yaml, whose errors are not structural: %v", name, err)
			}
		})
	}
	for _, name := range yamlTestdata {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile("testdata/" + name + ".yaml")
			if err != nil {
				t.Fatal(err)
			}
			dec := yaml.NewDecoder(bytes.NewReader(data))
			var first, second yaml.Node
			err = dec.Decode(&first)
			if err == nil {
				var v any
				err = first.Decode(&v)
			}
			if err == nil && dec.Decode(&second) == nil {
				err = errors.New("a second document")
			}
			if err == nil || errors.Is(err, io.EOF) {
				t.Errorf("testdata/%s.yaml is one well-formed YAML document; list it as structural or semantic", name)
			}
		})
	}
}

// TestSchemaCases checks single structural rules on small recipes, each
// against the loader too, so that the two agree.
func TestSchemaCases(t *testing.T) {
	sch := compileSchema(t)
	for _, tc := range []struct {
		name, yaml string
		ok         bool
	}{
		{"run with env", "from: scratch\nsteps:\n  - {run: x, env: {A: b}}\n", true},
		{"env step", "from: scratch\nsteps:\n  - {env: {A: b}, name: n}\n", true},
		{"env beside copy", "from: scratch\nsteps:\n  - {copy: a, to: /a, env: {A: b}}\n", false},
		{"file step", "from: scratch\nsteps:\n  - {file: /a, content: x, mode: '0600', owner: '1:1'}\n", true},
		{"file without content", "from: scratch\nsteps:\n  - {file: /a}\n", false},
		{"file with number content", "from: scratch\nsteps:\n  - {file: /a, content: 42}\n", false},
		{"copy without to", "from: scratch\nsteps:\n  - {copy: a}\n", false},
		{"mode as a YAML number", "from: scratch\nsteps:\n  - {copy: a, to: /a, mode: 0644}\n", true},
		{"network expanded", "args: {N: host}\nfrom: scratch\nsteps:\n  - {run: x, network: '${N}'}\n", true},
		{"network bad", "from: scratch\nsteps:\n  - {run: x, network: bridge}\n", false},
		{"secret without id", "from: scratch\nsteps:\n  - run: x\n    mounts: [{type: secret, target: /s}]\n", false},
		{"tmpfs with id", "from: scratch\nsteps:\n  - run: x\n    mounts: [{type: tmpfs, target: /t, id: x}]\n", false},
		{"empty run", "from: scratch\nsteps:\n  - {run: '  '}\n", false},
		{"stage named scratch", "stages:\n  - {name: scratch, from: scratch}\n", false},
		{"bad arg name", "args: {1X: a}\nfrom: scratch\n", false},
		{"env name with =", "env: {'A=B': c}\nfrom: scratch\n", false},
		{"env name with dot", "env: {A.B: c}\nfrom: scratch\n", true},
		{"from and stages", "from: scratch\nstages:\n  - {from: scratch}\n", false},
		{"no from", "steps: []\n", false},
		{"image", "from: scratch\nimage: {cmd: [], entrypoint: [/a], labels: {a: b}, expose: [80], volumes: [/d], stop-signal: TERM}\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, lerr := Parse("strata.yaml", []byte(tc.yaml))
			if (lerr == nil) != tc.ok {
				t.Fatalf("the loader: ok = %v, want %v: %v", lerr == nil, tc.ok, lerr)
			}
			v, err := yamlValue(t, []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(v); (err == nil) != tc.ok {
				t.Errorf("the schema: ok = %v, want %v: %v", err == nil, tc.ok, err)
			}
		})
	}
}
