package imagediff

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"sort"
	"strconv"
)

// fieldDiff compares two JSON documents field by field and collects the
// changes. skip names paths left to another part of the comparison.
type fieldDiff struct {
	skip    map[string]bool
	changes []FieldChange
}

// decodeJSON decodes a JSON document keeping numbers exact.
func decodeJSON(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// value compares the values at path; aok and bok say whether each side
// has the field at all.
func (d *fieldDiff) value(path string, a, b any, aok, bok bool) {
	if d.skip[path] {
		return
	}
	if aok && bok {
		ma, okA := a.(map[string]any)
		mb, okB := b.(map[string]any)
		if okA && okB {
			d.object(path, ma, mb)
			return
		}
		la, okA := a.([]any)
		lb, okB := b.([]any)
		if okA && okB && (hasObjects(la) || hasObjects(lb)) {
			d.array(path, la, lb)
			return
		}
		if reflect.DeepEqual(a, b) {
			return
		}
	}
	c := FieldChange{Path: path}
	if aok {
		c.A = marshal(a)
	}
	if bok {
		c.B = marshal(b)
	}
	d.changes = append(d.changes, c)
}

func (d *fieldDiff) object(path string, a, b map[string]any) {
	keys := unionKeys(a, b)
	sort.Strings(keys)
	for _, k := range keys {
		va, aok := a[k]
		vb, bok := b[k]
		d.value(joinKey(path, k), va, vb, aok, bok)
	}
}

// array compares arrays of objects entry by entry (history); arrays of
// scalars (Env, Cmd) are compared whole by value.
func (d *fieldDiff) array(path string, a, b []any) {
	for i := 0; i < max(len(a), len(b)); i++ {
		var va, vb any
		if i < len(a) {
			va = a[i]
		}
		if i < len(b) {
			vb = b[i]
		}
		d.value(path+"["+strconv.Itoa(i)+"]", va, vb, i < len(a), i < len(b))
	}
}

func hasObjects(l []any) bool {
	for _, v := range l {
		switch v.(type) {
		case map[string]any, []any:
			return true
		}
	}
	return false
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// joinKey appends an object key to a path: a.b, or a["k.with.dots"].
func joinKey(path, key string) string {
	if !identifier.MatchString(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// marshal encodes a decoded JSON value compactly, without HTML escaping
// ("&&" in a created_by stays readable).
func marshal(v any) json.RawMessage {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Unreachable: values decoded from JSON always encode.
		return json.RawMessage(strconv.Quote(err.Error()))
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}
