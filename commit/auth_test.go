package commit_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/testutil"
)

// authRegistry starts a TLS registry with htpasswd auth, its CA in a
// certs.d of the test, holding ref (REGISTRY/strata/app:v1) and
// REGISTRY/other/app:v1.
func authRegistry(t *testing.T) (r *testutil.Registry, ref string) {
	t.Helper()
	r = testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true, Auth: true})
	dockerDir, _ := withCertDirs(t)
	r.WriteCertsD(t, dockerDir)
	ref = r.Addr + "/strata/app:v1"
	o := commit.RegistryOptions{Keychain: staticKeychain(basicAuth(r.User, r.Password))}
	if _, err := commit.Push(t.Context(), motdImage(t, "auth\n"), tagsOf(t, []string{ref, r.Addr + "/other/app:v1"}), o); err != nil {
		t.Fatal(err)
	}
	return r, ref
}

// loggingHelper installs docker-credential-NAME on PATH: it writes each
// server it is asked for to the returned log, answers user and password
// for server only, and fails (exit 3) for anything else, as a strict
// helper (one keyed by registry host, as docker asks) does.
func loggingHelper(t *testing.T, helper, server, user, password string) (log string) {
	t.Helper()
	dir := t.TempDir()
	log = filepath.Join(dir, "asked.log")
	script := fmt.Sprintf(`#!/bin/sh
[ "$1" = get ] || exit 1
read -r url
echo "$url" >> %s
[ "$url" = %q ] || { echo "unknown server $url" >&2; exit 3; }
sleep 0.2
printf '{"ServerURL":"%%s","Username":"%s","Secret":"%s"}\n' "$url"
`, log, server, user, password)
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-"+helper), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return log
}

// TestCredentialHelperAskedOncePerHost: credsStore and credHelpers
// helpers are asked for the registry host, never HOST/REPO (as docker
// asks; a helper keyed by host fails on anything else), and once per
// host however many requests, repositories and pulls run at once.
func TestCredentialHelperAskedOncePerHost(t *testing.T) {
	r, ref := authRegistry(t)
	for _, tc := range []struct{ name, config string }{
		{"credsStore", `{"credsStore": "stratalog"}`},
		{"credHelpers", `{"credHelpers": {"` + r.Addr + `": "stratalog"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolateCredentials(t, tc.config)
			log := loggingHelper(t, "stratalog", r.Addr, r.User, r.Password)
			var wg sync.WaitGroup
			errs := make([]error, 6)
			for i := range errs {
				wg.Go(func() {
					ref := []string{ref, r.Addr + "/other/app:v1"}[i%2]
					if _, err := pullRef(t, ref, commit.PullOptions{}); err != nil {
						errs[i] = commit.RegistryError(ref, err)
					}
				})
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Errorf("Pull: %v", err)
				}
			}
			tag := r.Addr + "/strata/pushed:v1"
			if _, err := commit.Push(t.Context(), motdImage(t, "helper\n"), tagsOf(t, []string{tag}), commit.RegistryOptions{}); err != nil {
				t.Errorf("Push: %v", commit.RegistryError(tag, err))
			}
			asked, err := os.ReadFile(log)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := string(asked), r.Addr+"\n"; got != want {
				t.Errorf("the helper was asked for:\n%swant once, for %s", got, want)
			}
		})
	}
}

// TestAuthsNamespaceKeys: podman's and buildah's auths keys scoped to a
// namespace (login HOST/NS): the most specific one of the repository is
// sent, every time, and a refusal names it.
func TestAuthsNamespaceKeys(t *testing.T) {
	r, ref := authRegistry(t)
	good, wrong := basicAuth(r.User, r.Password), basicAuth(r.User, "wrong")
	entry := func(key, auth string) string { return fmt.Sprintf(`%q: {"auth": %q}`, r.Addr+key, auth) }
	for _, tc := range []struct {
		name    string
		entries []string
		refused string // the entry the message names; "" if the pull succeeds
	}{
		{"namespace beside another", []string{entry("/app", wrong), entry("/strata", good), entry("/other", wrong)}, ""},
		{"namespace before host", []string{entry("", wrong), entry("/strata", good)}, ""},
		{"repository before namespace", []string{entry("/strata", good), entry("/strata/app", wrong)}, r.Addr + "/strata/app"},
		{"other namespaces only", []string{entry("/app", good)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := isolateCredentials(t, `{"auths": {`+strings.Join(tc.entries, ", ")+`}}`)
			for range 8 {
				_, err := pullRef(t, ref, commit.PullOptions{})
				err = commit.RegistryError(ref, err)
				switch {
				case tc.name == "other namespaces only":
					want := fmt.Sprintf(`no credentials for %s in %s/docker-config/config.json (its auths entries "%s/app" are for other repositories)`, r.Addr, home, r.Addr)
					if err == nil || !strings.Contains(err.Error(), want) {
						t.Fatalf("Pull = %v, want an error saying %q", err, want)
					}
				case tc.refused == "" && err != nil:
					t.Fatalf("Pull: %v", err)
				case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), fmt.Sprintf("(auths entry %q) were refused", tc.refused))):
					t.Fatalf("Pull = %v, want the credentials of auths entry %q refused", err, tc.refused)
				}
			}
		})
	}
}

// TestRegistryAuthFile: an explicit REGISTRY_AUTH_FILE is read first, as
// skopeo and buildah read it, even beside a docker config; the docker
// config still answers for the registries it lacks; a registry neither
// has is reported with both files.
func TestRegistryAuthFile(t *testing.T) {
	r, ref := authRegistry(t)
	good, wrong := basicAuth(r.User, r.Password), basicAuth(r.User, "wrong")
	authFile := filepath.Join(t.TempDir(), "auth.json")
	for _, tc := range []struct {
		name, docker, podman string
		want                 string // in the error; "" if the pull succeeds
	}{
		{"auth file beside a docker config", `{"auths": {"other.example": {"auth": "` + good + `"}}}`,
			`{"auths": {"` + r.Addr + `": {"auth": "` + good + `"}}}`, ""},
		{"auth file first", `{"auths": {"` + r.Addr + `": {"auth": "` + wrong + `"}}}`,
			`{"auths": {"` + r.Addr + `": {"auth": "` + good + `"}}}`, ""},
		{"docker config for the rest", `{"auths": {"` + r.Addr + `": {"auth": "` + good + `"}}}`,
			`{"auths": {"other.example": {"auth": "` + good + `"}}}`, ""},
		{"in neither", `{}`, `{}`, "no credentials for " + r.Addr + " in " + authFile + " nor in $HOME/docker-config/config.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := isolateCredentials(t, tc.docker)
			if err := os.WriteFile(authFile, []byte(tc.podman), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("REGISTRY_AUTH_FILE", authFile)
			_, err := pullRef(t, ref, commit.PullOptions{})
			if err != nil {
				err = commit.RegistryError(ref, err)
			}
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Pull: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(strings.ReplaceAll(err.Error(), home, "$HOME"), tc.want)):
				t.Errorf("Pull = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestPodmanAuthAfterDockerConfig: a podman login (XDG_RUNTIME_DIR's
// containers/auth.json) is found when a docker config exists without an
// entry for the registry (even an empty one), as skopeo finds it; the
// docker config's own entry wins.
func TestPodmanAuthAfterDockerConfig(t *testing.T) {
	r, ref := authRegistry(t)
	good, wrong := basicAuth(r.User, r.Password), basicAuth(r.User, "wrong")
	for _, tc := range []struct {
		name, docker, podman string
		ok                   bool
	}{
		{"empty docker config", `{}`, `{"auths": {"` + r.Addr + `": {"auth": "` + good + `"}}}`, true},
		{"docker config's entry first", `{"auths": {"` + r.Addr + `": {"auth": "` + wrong + `"}}}`, `{"auths": {"` + r.Addr + `": {"auth": "` + good + `"}}}`, false},
		{"podman file that does not parse", `{}`, `{"auths": `, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := isolateCredentials(t, tc.docker)
			run := filepath.Join(home, "run")
			if err := os.MkdirAll(filepath.Join(run, "containers"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(run, "containers", "auth.json"), []byte(tc.podman), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("XDG_RUNTIME_DIR", run)
			_, err := pullRef(t, ref, commit.PullOptions{})
			if tc.ok != (err == nil) {
				t.Errorf("Pull: %v, want success %v", err, tc.ok)
			}
			if auth := filepath.Join(run, "containers", "auth.json"); tc.podman == `{"auths": ` && (err == nil || !strings.Contains(err.Error(), auth)) {
				t.Errorf("Pull: %v, want an error naming %s", err, auth)
			}
		})
	}
}

// TestMalformedAuthsEntry: an auths entry whose auth does not decode
// does not stop other registries from being reached (as skopeo; docker
// ignores the whole file with a warning); for its own registry it is an
// error naming it.
func TestMalformedAuthsEntry(t *testing.T) {
	r, ref := authRegistry(t)
	good := basicAuth(r.User, r.Password)
	isolateCredentials(t, `{"auths": {"ghcr.io": {"auth": "!!notbase64"}, "`+r.Addr+`": {"auth": "`+good+`"}}}`)
	if _, err := pullRef(t, ref, commit.PullOptions{}); err != nil {
		t.Errorf("Pull with a malformed entry for another registry: %v", commit.RegistryError(ref, err))
	}

	// Without credentials for the registry, the message names the entry
	// skipped.
	home := isolateCredentials(t, `{"auths": {"ghcr.io": {"auth": "!!notbase64"}}}`)
	err := pullErr(t, ref)
	want := fmt.Sprintf(`(skipped as unreadable: auths entries "ghcr.io" in %s/docker-config/config.json)`, home)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("Pull with only a malformed entry for another registry = %v, want it to say %q", err, want)
	}

	home = isolateCredentials(t, `{"auths": {"`+r.Addr+`": {"auth": "!!notbase64"}}}`)
	_, err = pullRef(t, ref, commit.PullOptions{})
	want = fmt.Sprintf(`reading registry credentials from %s/docker-config/config.json: auths entry %q: its "auth" is not base64`, home, r.Addr)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Pull with a malformed entry for the registry = %v, want an error saying %q", err, want)
	}
}
