package cli

import (
	"os"
	"strings"
	"testing"

	"github.com/stratabuild/strata/commit"
)

func TestParseOutput(t *testing.T) {
	tests := []struct {
		spec    string
		want    commit.Output
		wantErr string
	}{
		{spec: "type=oci,dest=out", want: commit.Output{Type: commit.OutputOCI, Dest: "out"}},
		{spec: "dest=img.tar,type=docker", want: commit.Output{Type: commit.OutputDocker, Dest: "img.tar"}},
		{spec: "type=registry", want: commit.Output{Type: commit.OutputRegistry}},
		{spec: "type=oci", wantErr: "type=oci needs dest=DIR"},
		{spec: "type=docker", wantErr: "type=docker needs dest=FILE"},
		{spec: "type=registry,dest=x", wantErr: "takes no dest"},
		{spec: "type=tar,dest=x", wantErr: `unknown type "tar"`},
		{spec: "dest=x", wantErr: "missing type="},
		{spec: "type=oci,dest=a,compression=zstd", wantErr: `unknown key "compression"`},
		{spec: "type=oci,type=docker,dest=a", wantErr: "type given twice"},
		{spec: "out/dir", wantErr: "want type=oci,dest=DIR"},
		{spec: "", wantErr: "empty output"},
		// buildx writes a tarball at an OCI dest unless tar=false.
		{spec: "type=oci,dest=image.tar", wantErr: "strata writes an OCI layout directory at dest, where buildx writes a tarball"},
		{spec: "type=oci,dest=image.tar,tar=false", want: commit.Output{Type: commit.OutputOCI, Dest: "image.tar"}},
		{spec: "tar=false,type=oci,dest=out", want: commit.Output{Type: commit.OutputOCI, Dest: "out"}},
		{spec: "type=oci,dest=out,tar=true", wantErr: "tar=false with type=oci, or no tar="},
		{spec: "type=docker,dest=a.tar,tar=false", wantErr: "tar=false with type=oci, or no tar="},
	}
	for _, tt := range tests {
		got, err := parseOutput(tt.spec)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseOutput(%q) = %v, want error holding %q", tt.spec, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseOutput(%q) = %v", tt.spec, err)
			continue
		}
		if got != tt.want {
			t.Errorf("parseOutput(%q) = %+v, want %+v", tt.spec, got, tt.want)
		}
		if again, err := parseOutput(got.String()); err != nil || again != got {
			t.Errorf("parseOutput(%q.String()) = %+v, %v; want it back", tt.spec, again, err)
		}
	}
}

func TestParseSecret(t *testing.T) {
	t.Setenv("STRATA_TEST_TOKEN", "t0k")
	tests := []struct {
		spec    string
		want    secret
		wantErr string
	}{
		{spec: "id=npmrc,src=/home/me/.npmrc", want: secret{ID: "npmrc", Src: "/home/me/.npmrc"}},
		{spec: "id=tok,source=tok.txt", want: secret{ID: "tok", Src: "tok.txt"}},
		{spec: "id=tok,env=GITHUB_TOKEN", want: secret{ID: "tok", Env: "GITHUB_TOKEN"}},
		{spec: "src=x", wantErr: "missing id="},
		// As buildx: the id alone names the environment variable if it
		// is set, else the file; type=env takes src= as the variable.
		{spec: "id=STRATA_TEST_TOKEN", want: secret{ID: "STRATA_TEST_TOKEN", Env: "STRATA_TEST_TOKEN"}},
		{spec: "id=STRATA_TEST_UNSET", want: secret{ID: "STRATA_TEST_UNSET", Src: "STRATA_TEST_UNSET"}},
		{spec: "id=STRATA_TEST_TOKEN,type=file", want: secret{ID: "STRATA_TEST_TOKEN", Src: "STRATA_TEST_TOKEN"}},
		{spec: "id=tok,type=env,src=GITHUB_TOKEN", want: secret{ID: "tok", Env: "GITHUB_TOKEN"}},
		{spec: "id=tok,type=ssh", wantErr: "want type=file or type=env"},
		{spec: "id=x,src=a,env=B", wantErr: "not both"},
		{spec: "id=x,src=a,mode=0400", wantErr: `unknown key "mode"`},
		{spec: "id", wantErr: "is not KEY=VALUE"},
	}
	for _, tt := range tests {
		got, err := parseSecret(tt.spec)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseSecret(%q) = %v, want error holding %q", tt.spec, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseSecret(%q) = %+v, %v; want %+v", tt.spec, got, err, tt.want)
		}
	}
}

// TestDefaultRoot: without STRATA_ROOT, root's state directory is
// /var/lib/strata, another user's is under her XDG_DATA_HOME.
func TestDefaultRoot(t *testing.T) {
	t.Setenv("STRATA_ROOT", "")
	t.Setenv("XDG_DATA_HOME", "/home/u/.data")
	want := "/home/u/.data/strata"
	if os.Geteuid() == 0 {
		want = "/var/lib/strata"
	}
	if got := defaultRoot(); got != want {
		t.Errorf("defaultRoot() = %q, want %q", got, want)
	}
}

func TestDefaultRootFromEnv(t *testing.T) {
	t.Setenv("STRATA_ROOT", "/srv/strata-state")
	if got := defaultRoot(); got != "/srv/strata-state" {
		t.Errorf("defaultRoot() with STRATA_ROOT = %q", got)
	}
}

// TestCacheRefErrorOnce: a bad --cache-from is reported once.
func TestCacheRefErrorOnce(t *testing.T) {
	code, _, stderr := run(t, (&fakeBuilder{}).build, "build", "--cache-from", "Bad Repo", newContext(t))
	if code != 2 || strings.Count(stderr, "Bad Repo") != 1 {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and the error once", code, stderr)
	}
}

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "512", want: 512}, {in: "6m", want: 6 << 20}, {in: "2g", want: 2 << 30}, {in: "2GiB", want: 2 << 30},
		{in: "1.5k", want: 1536}, {in: "100GB", want: 100 << 30}, {in: "x", bad: true}, {in: "-1g", bad: true}, {in: "", bad: true},
	} {
		got, err := parseBytes(tc.in)
		if (err != nil) != tc.bad || !tc.bad && got != tc.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d (error: %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}
