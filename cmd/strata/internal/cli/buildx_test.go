package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stratabuild/strata/build"
	"github.com/stratabuild/strata/build/cache"
	"github.com/stratabuild/strata/commit"
)

// TestParseCache: the --cache-from/--cache-to forms buildx users type.
func TestParseCache(t *testing.T) {
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	tests := []struct {
		spec    string
		from    bool
		want    string // the store's String(); "" with wantErr
		wantErr string
	}{
		{spec: "127.0.0.1:5000/cache/app", want: "127.0.0.1:5000/cache/app"},
		{spec: "127.0.0.1:5000/cache/app:main", from: true, want: "127.0.0.1:5000/cache/app:main"},
		{spec: "type=registry,ref=127.0.0.1:5000/cache/app", from: true, want: "127.0.0.1:5000/cache/app"},
		{spec: "type=registry,ref=127.0.0.1:5000/cache/app:main,mode=max", want: "127.0.0.1:5000/cache/app:main"},
		{spec: "type=registry,ref=127.0.0.1:5000/cache/app,mode=min", want: "127.0.0.1:5000/cache/app"},
		{spec: "type=local,dest=/ci/cache", want: "local cache /ci/cache"},
		{spec: "mode=max,dest=ci-cache,type=local", want: "local cache " + abs("ci-cache")},
		{spec: "type=local,src=/ci/cache", from: true, want: "local cache /ci/cache"},
		{spec: "type=local,src=/ci/cache", wantErr: `unknown key "src" for type=local (want REF | type=registry,ref=REF[,mode=min|max] | type=local,dest=DIR`},
		{spec: "type=local,dest=/ci/cache", from: true, wantErr: `unknown key "dest" for type=local (want REF | type=registry,ref=REF | type=local,src=DIR)`},
		{spec: "type=local", wantErr: "type=local needs dest=DIR"},
		{spec: "type=local", from: true, wantErr: "type=local needs src=DIR"},
		{spec: "type=registry", wantErr: "type=registry needs ref=REF"},
		{spec: "type=registry,ref=Bad Repo", wantErr: `bad reference "Bad Repo"`},
		{spec: "type=registry,ref=r.example/c,mode=all", wantErr: "mode=all: want min or max"},
		{spec: "type=local,src=/c,mode=max", from: true, wantErr: "mode= is a --cache-to setting"},
		{spec: "type=gha", wantErr: `unknown type "gha"`},
		{spec: "type=inline", wantErr: `unknown type "inline"`},
		{spec: "ref=r.example/c", wantErr: "missing type="},
		{spec: "type=registry,ref=r.example/c,compression=zstd", wantErr: `unknown key "compression"`},
		{spec: "type=local,dest=a,dest=b", wantErr: "dest given twice"},
		{spec: "Bad Repo", wantErr: `bad reference "Bad Repo"`},
	}
	for _, tt := range tests {
		got, err := parseCache(tt.spec, tt.from, commit.RegistryOptions{})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseCache(%q, from=%t) = %v, want error holding %q", tt.spec, tt.from, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseCache(%q, from=%t) = %v", tt.spec, tt.from, err)
			continue
		}
		if got.String() != tt.want {
			t.Errorf("parseCache(%q, from=%t) = %s, want %s", tt.spec, tt.from, got, tt.want)
		}
		_, isDir := got.(*cache.Dir)
		if isDir != strings.HasPrefix(tt.want, "local cache ") {
			t.Errorf("parseCache(%q) = %T", tt.spec, got)
		}
	}
}

// TestBuildxFlags: --label, --annotation, --iidfile, -q and the
// compression level reach the build as buildx users mean them.
func TestBuildxFlags(t *testing.T) {
	dir, cacheDir := newContext(t), t.TempDir()
	f := &fakeBuilder{}
	code, stdout, stderr := run(t, f.build, "build", "-q",
		"--label", "org.opencontainers.image.version=1.2", "--label", "empty", "--label", "twice=1", "--label", "twice=2",
		"--annotation", "org.opencontainers.image.source=https://example.invalid/app", "--annotation", "manifest:org.example.a=b=c",
		"--iidfile", "iid.txt", "--compression", "zstd", "--compression-level", "19",
		"--cache-to", "type=local,dest=/ci/cache,mode=max", "--cache-from", "type=local,src="+cacheDir, dir)
	if code != 0 {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr)
	}
	if stdout != digest+"\n" {
		t.Errorf("stdout = %q, want the digest on one line", stdout)
	}
	o := f.req.Build
	if d := cmp.Diff(map[string]string{"org.opencontainers.image.version": "1.2", "empty": "", "twice": "2"}, o.Labels); d != "" {
		t.Errorf("labels (-want +got):\n%s", d)
	}
	if d := cmp.Diff(map[string]string{"org.opencontainers.image.source": "https://example.invalid/app", "org.example.a": "b=c"}, o.Annotations); d != "" {
		t.Errorf("annotations (-want +got):\n%s", d)
	}
	if !f.req.Quiet || f.req.IIDFile != "iid.txt" {
		t.Errorf("Quiet = %t, IIDFile = %q; want true, iid.txt", f.req.Quiet, f.req.IIDFile)
	}
	if want := (commit.Compression{Codec: commit.CodecZstd, Level: 19}); o.Compression != want {
		t.Errorf("Compression = %+v, want %+v", o.Compression, want)
	}
	if len(o.CacheTo) != 1 || o.CacheTo[0].String() != "local cache /ci/cache" || len(o.CacheFrom) != 1 || o.CacheFrom[0].String() != "local cache "+cacheDir {
		t.Errorf("caches: to %v, from %v; want the local directories /ci/cache and %s", o.CacheTo, o.CacheFrom, cacheDir)
	}
}

// TestMissingLocalCacheFrom: a local --cache-from directory that is not
// there yet (a CI job's first run) is left out with a warning, as buildx
// does, not an error and not silence.
func TestMissingLocalCacheFrom(t *testing.T) {
	dir := newContext(t)
	f := &fakeBuilder{}
	code, _, stderr := run(t, f.build, "build", "--cache-from", "type=local,src=/nonexistent/ci-cache", dir)
	if code != 0 {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr)
	}
	if len(f.req.Build.CacheFrom) != 0 {
		t.Errorf("CacheFrom = %v, want none", f.req.Build.CacheFrom)
	}
	want := "--cache-from: local cache /nonexistent/ci-cache not used: no such file or directory (warning)"
	if len(f.req.Warnings) != 1 || f.req.Warnings[0]+" (warning)" != want {
		t.Errorf("Warnings = %q, want %q", f.req.Warnings, want)
	}
}

func TestBuildxFlagErrors(t *testing.T) {
	dir := newContext(t)
	for _, tt := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"--annotation", "index:org.example.a=b"}, "strata annotates the image manifest only"},
		{[]string{"--annotation", "novalue"}, `--annotation: bad value "novalue": want KEY=VALUE`},
		{[]string{"--label", "=v"}, `--label: bad value "=v"`},
		{[]string{"--compression-level", "12"}, "--compression-level: bad gzip level 12: want 1 (fastest) to 9 (smallest)"},
		{[]string{"--compression", "zstd", "--compression-level", "23"}, "bad zstd level 23"},
		{[]string{"--compression-level", "0"}, "--compression-level: bad gzip level 0: want 1 (fastest) to 9 (smallest), or leave it out for the default"},
		{[]string{"--compression", "zstd", "--compression-level", "0"}, "--compression-level: bad zstd level 0: want 1 (fastest) to 22 (smallest)"},
		{[]string{"--cache-to", "type=local"}, "--cache-to: bad cache \"type=local\": type=local needs dest=DIR"},
		{[]string{"--iidfile", "m.json", "--metadata-file", "m.json"}, "name the same file"},
	} {
		f := &fakeBuilder{}
		code, stdout, stderr := run(t, f.build, append(append([]string{"build"}, tt.args...), dir)...)
		if code != 2 || !strings.Contains(stderr, tt.stderr) || stdout != "" || f.calls != 0 {
			t.Errorf("strata build %q: exit %d, stdout %q, stderr %q; want exit 2, nothing built, stderr holding %q",
				tt.args, code, stdout, stderr, tt.stderr)
		}
	}
}

// TestMetadataKeys: the metadata file carries buildx's keys for the
// digests, and strata's own.
func TestMetadataKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.json")
	res := &build.Result{Digest: digest, ConfigDigest: "sha256:c0f1", Steps: []build.StepResult{{Pos: "strata.yaml:3", Action: "run"}}}
	if err := writeMetadata(path, res, nil); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"containerimage.digest": digest, "image.digest": digest, "containerimage.config.digest": "sha256:c0f1"} {
		if got[k] != want {
			t.Errorf("metadata %s = %v, want %s", k, got[k], want)
		}
	}
	if steps, _ := got["steps"].([]any); len(steps) != 1 {
		t.Errorf("metadata steps = %v, want one", got["steps"])
	}
}

// TestTagWithoutOutputWarns: -t with no -o, --push or --load writes the
// image nowhere but the state root, which is said (as buildx warns that
// the result only remains in the build cache), with how to write it.
func TestTagWithoutOutputWarns(t *testing.T) {
	dir := newContext(t)
	root := t.TempDir()
	want := "no output given: the image tagged app:1 is only in strata's state root " + root +
		"; write it with -o type=oci,dest=DIR or -o type=docker,dest=FILE, --push or --load"
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"-t", "app:1"}, []string{want}},
		{[]string{"-t", "app:1", "-o", "type=oci,dest=" + filepath.Join(root, "out")}, nil},
		{[]string{"-t", "app:1", "--dry-run"}, nil},
		{nil, nil},
	} {
		f := &fakeBuilder{}
		code, _, stderr := run(t, f.build, append(append([]string{"build", "--root", root}, tt.args...), dir)...)
		if code != 0 {
			t.Fatalf("strata build %q: exit %d\n%s", tt.args, code, stderr)
		}
		if !slices.Equal(f.req.Warnings, tt.want) {
			t.Errorf("strata build %q: Warnings = %q, want %q", tt.args, f.req.Warnings, tt.want)
		}
	}
}

// TestSecretHelp: --secret's help shows the forms it takes, and no bare
// form it refuses.
func TestSecretHelp(t *testing.T) {
	_, stdout, _ := run(t, nil, "build", "--help")
	want := "--secret SPEC              give a secret mount its content, SPEC: id=ID,src=FILE | id=ID,env=VAR | id=ID (the environment variable ID if set, else the file ID) (repeatable)\n"
	if !strings.Contains(stdout, want) {
		t.Errorf("strata build --help does not say\n%s\nit says:\n%s", want, stdout)
	}
}
