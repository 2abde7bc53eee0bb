package units

import "testing"

func TestBytes(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {122, "122 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {4096, "4.0 KiB"},
		{47_500_000, "45.3 MiB"}, {3 << 30, "3.0 GiB"}, {1<<63 - 1, "8.0 EiB"},
	} {
		if got := Bytes(tt.n); got != tt.want {
			t.Errorf("Bytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
