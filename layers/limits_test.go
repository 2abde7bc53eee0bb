package layers

import "testing"

func TestLimitErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		err  LimitError
		want string
	}{
		{LimitError{Entry: "big.img", Kind: LimitBytes, Limit: DefaultMaxLayerBytes},
			`entry "big.img": the layer expands to more than 64 GiB (raise the limit with --max-layer-bytes)`},
		{LimitError{Entry: "f", Kind: LimitEntries, Limit: DefaultMaxLayerEntries},
			`entry "f": the layer has more than 2000000 entries (raise the limit with --max-layer-entries)`},
		{LimitError{Entry: "data/blob", Kind: LimitFreeSpace, Limit: 3<<20 + 1<<19},
			`entry "data/blob": the layer needs more than the 3.5 MiB free on the layer store's filesystem (free some space, or use another --root)`},
		{LimitError{Entry: "x", Kind: LimitBytes, Limit: 1000},
			`entry "x": the layer expands to more than 1000 B (raise the limit with --max-layer-bytes)`},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func TestLimitsDefaults(t *testing.T) {
	got := Limits{MaxEntries: -1}.withDefaults()
	if want := (Limits{MaxBytes: DefaultMaxLayerBytes, MaxEntries: -1}); got != want {
		t.Errorf("withDefaults = %+v, want %+v", got, want)
	}
}
