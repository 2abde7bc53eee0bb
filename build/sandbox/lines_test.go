package sandbox

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLines(t *testing.T) {
	var lines []string
	w := NewLines(3, []string{"hunter2"}, func(s string) { lines = append(lines, s) })
	for _, chunk := range []string{"one\ntw", "o\r\nthree hunter2\nfour\n", "five"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{"three ****", "four", "five"}, w.Tail()); diff != "" {
		t.Errorf("Tail() (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"one", "two", "three ****", "four", "five"}, lines); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}
