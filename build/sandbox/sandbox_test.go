package sandbox

import (
	"strings"
	"testing"
)

func TestOptionsInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want []string // substrings of the error, all reported at once
	}{
		{"empty", Options{}, []string{"rootfs is empty", "args is empty"}},
		{"cwd and network", Options{Rootfs: "/r", Args: []string{"sh"}, Cwd: "rel", Network: "bridge"},
			[]string{`working directory "rel" is not absolute`, `network "bridge"`}},
		{"mounts", Options{Rootfs: "/r", Args: []string{"sh"}, Mounts: []Mount{
			{Type: "bind", Target: "/a"},
			{Type: "volume", Target: "/b"},
			{Type: "tmpfs", Target: "c"},
		}}, []string{"bind mount on /a has no source", `type "volume"`, `mount target "c" is not absolute`}},
		{"id", Options{Rootfs: "/r", Args: []string{"sh"}, ID: "../x"}, []string{`container id "../x": only letters, digits`}},
		{"bundle id", Options{Rootfs: "/r", Args: []string{"sh"}, ID: "x.bundle"}, []string{`container id "x.bundle" is reserved`}},
		{"memory", Options{Rootfs: "/r", Args: []string{"sh"}, MemoryLimit: 1 << 20}, []string{"memory limit 1048576 bytes is below the minimum"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.o.withDefaults()
			if err == nil {
				t.Fatalf("withDefaults(%+v) = nil error, want %q", tc.o, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("withDefaults error = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{Rootfs: "/r", Args: []string{"sh"}, Cwd: "/a/../b/"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.PidsLimit != DefaultPidsLimit || o.MemoryLimit != -1 {
		t.Errorf("withDefaults = PidsLimit %d, MemoryLimit %d; want %d, -1 (unlimited)", o.PidsLimit, o.MemoryLimit, DefaultPidsLimit)
	}
	if o.Cwd != "/b" || o.Network != NetworkNone || o.Runtime != "runc" || len(o.ID) != 32 || o.Hostname != o.ID[:12] || o.Log == nil {
		t.Errorf("withDefaults = Cwd %q, Network %q, Runtime %q, ID %q, Hostname %q, Log %v; want /b, none, runc, 32 hex, ID[:12], a logger",
			o.Cwd, o.Network, o.Runtime, o.ID, o.Hostname, o.Log)
	}
}
