package cli

import (
	"encoding/json"
	"testing"

	"github.com/stratabuild/strata/recipe"
)

func TestSchemaCommand(t *testing.T) {
	code, stdout, stderr := run(t, nil, "schema")
	if code != ExitOK || stderr != "" {
		t.Fatalf("strata schema: exit %d, stderr %q", code, stderr)
	}
	if stdout != string(recipe.Schema()) {
		t.Errorf("strata schema printed something else than recipe.Schema()")
	}
	var s map[string]any
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatalf("strata schema output is not JSON: %v", err)
	}
	if s["$schema"] != recipe.SchemaDraft {
		t.Errorf("$schema = %v, want %s", s["$schema"], recipe.SchemaDraft)
	}
	if code, _, _ := run(t, nil, "schema", "extra"); code != ExitUsage {
		t.Errorf("strata schema extra: exit %d, want %d", code, ExitUsage)
	}
}
