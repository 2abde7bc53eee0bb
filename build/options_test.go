package build

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseOutput(t *testing.T) {
	tests := []struct {
		spec    string
		want    Output
		wantErr string
	}{
		{spec: "type=oci,dest=out", want: Output{Type: OutputOCI, Dest: "out"}},
		{spec: "dest=img.tar,type=docker", want: Output{Type: OutputDocker, Dest: "img.tar"}},
		{spec: "type=registry", want: Output{Type: OutputRegistry}},
		{spec: "type=oci", wantErr: "type=oci needs dest=DIR"},
		{spec: "type=docker", wantErr: "type=docker needs dest=FILE"},
		{spec: "type=registry,dest=x", wantErr: "takes no dest"},
		{spec: "type=tar,dest=x", wantErr: `unknown type "tar"`},
		{spec: "dest=x", wantErr: "missing type="},
		{spec: "type=oci,dest=a,compression=zstd", wantErr: `unknown key "compression"`},
		{spec: "type=oci,type=docker,dest=a", wantErr: "type given twice"},
		{spec: "out/dir", wantErr: "want type=oci,dest=DIR"},
		{spec: "", wantErr: "empty output"},
	}
	for _, tt := range tests {
		got, err := ParseOutput(tt.spec)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseOutput(%q) = %v, want error holding %q", tt.spec, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseOutput(%q) = %v", tt.spec, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseOutput(%q) = %+v, want %+v", tt.spec, got, tt.want)
		}
		if again, err := ParseOutput(got.String()); err != nil || again != got {
			t.Errorf("ParseOutput(%q.String()) = %+v, %v; want it back", tt.spec, again, err)
		}
	}
}

func TestParseSecret(t *testing.T) {
	tests := []struct {
		spec    string
		want    Secret
		wantErr string
	}{
		{spec: "id=npmrc,src=/home/me/.npmrc", want: Secret{ID: "npmrc", Src: "/home/me/.npmrc"}},
		{spec: "id=tok,source=tok.txt", want: Secret{ID: "tok", Src: "tok.txt"}},
		{spec: "id=tok,env=GITHUB_TOKEN", want: Secret{ID: "tok", Env: "GITHUB_TOKEN"}},
		{spec: "src=x", wantErr: "missing id="},
		{spec: "id=x", wantErr: "missing src= or env="},
		{spec: "id=x,src=a,env=B", wantErr: "not both"},
		{spec: "id=x,src=a,mode=0400", wantErr: `unknown key "mode"`},
		{spec: "id", wantErr: "is not KEY=VALUE"},
	}
	for _, tt := range tests {
		got, err := ParseSecret(tt.spec)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseSecret(%q) = %v, want error holding %q", tt.spec, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSecret(%q) = %+v, %v; want %+v", tt.spec, got, err, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want []string // lines of the error, in order; nil for valid
	}{
		{name: "zero", o: Options{}},
		{name: "full", o: Options{
			Tags: []string{"127.0.0.1:5000/a/b:1.0", "busybox", "localhost/x"}, Push: true,
			Outputs:     []Output{{Type: OutputOCI, Dest: "o"}, {Type: OutputDocker, Dest: "d.tar"}, {Type: OutputRegistry}},
			Secrets:     []Secret{{ID: "a", Src: "f"}, {ID: "b", Env: "E"}},
			Platform:    "linux/arm/v7",
			Compression: "zstd", Progress: "json",
			CacheFrom: []string{"reg:5000/cache"}, CacheTo: []string{"reg:5000/cache:main"},
			InsecureRegistries: []string{"reg:5000", "10.0.0.1"},
		}},
		{name: "push without tag", o: Options{Push: true}, want: []string{"--push needs at least one --tag to push to"}},
		{name: "everything wrong", o: Options{
			Tags:               []string{"Bad Tag"},
			Outputs:            []Output{{Type: OutputRegistry}, {Type: OutputOCI, Dest: "x"}, {Type: OutputDocker, Dest: "x"}},
			Secrets:            []Secret{{ID: "a", Src: "f"}, {ID: "a", Src: "g"}},
			Platform:           "linux",
			Compression:        "xz",
			Progress:           "tty",
			InsecureRegistries: []string{"http://reg"},
		}, want: []string{
			`--tag: bad reference "Bad Tag": want [REGISTRY/]REPOSITORY[:TAG], lowercase`,
			"--output type=docker,dest=x: dest x is used twice",
			"--secret: id a given twice",
			`--platform: bad value "linux": want os/arch[/variant], such as linux/amd64`,
			`--compression: bad value "xz": want gzip or zstd`,
			`--progress: bad value "tty": want auto, plain or json`,
			`--insecure-registry: bad host "http://reg": want HOST or HOST:PORT`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.Validate()
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDefaultRoot(t *testing.T) {
	got := DefaultRoot()
	if !strings.HasSuffix(got, "strata") || !strings.HasPrefix(got, "/") {
		t.Errorf("DefaultRoot() = %q, want an absolute path ending in strata", got)
	}
}
