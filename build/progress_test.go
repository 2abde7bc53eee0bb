package build

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLineWriter(t *testing.T) {
	var lines []string
	w := newLineWriter(3, nil, func(s string) { lines = append(lines, s) })
	for _, chunk := range []string{"one\ntw", "o\r\nthree\nfour\n", "five"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{"three", "four", "five"}, w.Tail()); diff != "" {
		t.Errorf("Tail() (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"one", "two", "three", "four", "five"}, lines); diff != "" {
		t.Errorf("emitted lines (-want +got):\n%s", diff)
	}
}

func TestProgressWriter(t *testing.T) {
	done := Event{Kind: EventDone, Step: 2, Steps: 3, Pos: "strata.yaml:7", Action: "run",
		Duration: 1500 * time.Millisecond, Layer: &LayerInfo{Size: 2048, Added: 4, Modified: 1, Deleted: 2}}
	var plain bytes.Buffer
	NewProgressWriter(&plain, "plain")(done)
	want := "[2/3] strata.yaml:7 run: done 1.5s, layer 2.0 KiB (+4 ~1 -2 files)\n"
	if plain.String() != want {
		t.Errorf("plain = %q, want %q", plain.String(), want)
	}

	var js bytes.Buffer
	NewProgressWriter(&js, "json")(done)
	var got Event
	if err := json.Unmarshal(js.Bytes(), &got); err != nil || !strings.HasSuffix(js.String(), "\n") {
		t.Fatalf("json line %q: %v", js.String(), err)
	}
	if diff := cmp.Diff(done, got); diff != "" {
		t.Errorf("json round trip (-want +got):\n%s", diff)
	}
}
