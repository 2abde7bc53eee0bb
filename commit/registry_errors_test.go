package commit_test

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite testdata/registry-errors/*.golden from the current messages")

// golden compares got with testdata/registry-errors/NAME.golden, after
// replacing the parts that change from run to run (ports, temp dirs).
func golden(t *testing.T, name, got string, replace ...string) {
	t.Helper()
	got = strings.NewReplacer(replace...).Replace(got) + "\n"
	path := filepath.Join("testdata", "registry-errors", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("message differs from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// withCertDirs points commit.CertDirs at fresh dirs under a temp dir for
// the test, named like the real ones.
func withCertDirs(t *testing.T) (dockerDir, containersDir string) {
	t.Helper()
	root := t.TempDir()
	dockerDir = filepath.Join(root, "docker", "certs.d")
	containersDir = filepath.Join(root, "containers", "certs.d")
	saved := commit.CertDirs
	commit.CertDirs = []string{dockerDir, containersDir}
	t.Cleanup(func() { commit.CertDirs = saved })
	t.Setenv("SSL_CERT_FILE", "")
	t.Setenv("SSL_CERT_DIR", "")
	return dockerDir, containersDir
}

// isolateCredentials makes the docker config DIR/config.json (written
// from configJSON unless it is empty) the only credentials file.
func isolateCredentials(t *testing.T, configJSON string) string {
	t.Helper()
	home := t.TempDir()
	dir := filepath.Join(home, "docker-config")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if configJSON != "" {
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(configJSON), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range map[string]string{"HOME": home, "DOCKER_CONFIG": dir, "XDG_RUNTIME_DIR": "",
		"XDG_CONFIG_HOME": "", "REGISTRY_AUTH_FILE": "", "DOCKER_AUTH_CONFIG": ""} {
		t.Setenv(k, v)
	}
	return home
}

func basicAuth(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// credentialHelper installs docker-credential-NAME on PATH, answering
// user and password for every registry.
func credentialHelper(t *testing.T, helper, user, password string) {
	t.Helper()
	dir := t.TempDir()
	script := fmt.Sprintf("#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread -r url\nprintf '{\"ServerURL\":\"%%s\",\"Username\":\"%s\",\"Secret\":\"%s\"}\\n' \"$url\"\n", user, password)
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-"+helper), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func pullErr(t *testing.T, ref string) error {
	t.Helper()
	_, err := pullRef(t, ref, commit.PullOptions{})
	if err == nil {
		t.Fatalf("Pull(%s) succeeded, want an error", ref)
	}
	return commit.RegistryError(ref, err)
}

// TestRegistryErrorTLS: a registry whose private CA is not installed, and
// the same registry once the CA is in its certs.d directory.
func TestRegistryErrorTLS(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true})
	dockerDir, containersDir := withCertDirs(t)
	if err := os.MkdirAll(filepath.Join(containersDir, r.Addr), 0o755); err != nil {
		t.Fatal(err)
	}
	ref := r.Addr + "/library/busybox:1"
	err := pullErr(t, ref)
	if msg := err.Error(); strings.Contains(msg, "Client sent an HTTP request") || strings.Contains(msg, "x509") {
		t.Errorf("message keeps ggcr's noise:\n%s", msg)
	}
	golden(t, "private-ca-missing", err.Error(), r.Addr, "127.0.0.1:PORT", filepath.Dir(filepath.Dir(dockerDir)), "$CERTS")

	// The same with the CA where docker looks for it: a second host name
	// of the same registry, whose files are read on first use.
	if err := os.MkdirAll(filepath.Join(dockerDir, r.Host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(r.CertDir, "ca.crt"), filepath.Join(dockerDir, r.Host, "ca.crt")); err != nil {
		t.Fatal(err)
	}
	tag := r.Host + "/strata/app:v1"
	img := motdImage(t, "over TLS\n")
	got, err := commit.Push(t.Context(), img, tagsOf(t, []string{tag}), commit.RegistryOptions{})
	if err != nil {
		t.Fatalf("Push with the CA in %s: %v", dockerDir, commit.RegistryError(tag, err))
	}
	pulled, err := pullRef(t, tag, commit.PullOptions{})
	if err != nil {
		t.Fatalf("Pull with the CA in %s: %v", dockerDir, commit.RegistryError(tag, err))
	}
	if d := digestOf(t, pulled); d != got {
		t.Errorf("pulled %v, pushed %v", d, got)
	}
}

// TestCertsDirRootless: not as root, the user's own certs.d
// (~/.config/containers/certs.d, as podman and skopeo rootless read it)
// is read, and a missing CA is to be put there, where the user can write.
func TestCertsDirRootless(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true})
	withCertDirs(t)
	home := t.TempDir()
	commit.CertDirs = commit.DefaultCertDirs(1000, "", home)
	userDir := filepath.Join(home, ".config", "containers", "certs.d")

	ref := r.Addr + "/strata/app:v1"
	err := pullErr(t, ref)
	want := "put the registry's CA certificate in " + filepath.Join(userDir, r.Addr, "ca.crt")
	if !strings.Contains(err.Error(), want) {
		t.Errorf("Pull without the CA, not as root = %v\nwant it to say %q", err, want)
	}

	// The same registry by its other name, with the CA in the user's dir.
	r.WriteCertsD(t, userDir)
	if err := os.Rename(filepath.Join(userDir, r.Addr), filepath.Join(userDir, r.Host)); err != nil {
		t.Fatal(err)
	}
	tag := r.Host + "/strata/app:v1"
	if _, err := commit.Push(t.Context(), motdImage(t, "rootless\n"), tagsOf(t, []string{tag}), commit.RegistryOptions{}); err != nil {
		t.Errorf("Push with the CA in %s: %v", userDir, commit.RegistryError(tag, err))
	}

	if got := commit.DefaultCertDirs(0, "", "/root"); len(got) != 2 || got[0] != "/etc/docker/certs.d" {
		t.Errorf("DefaultCertDirs as root = %q, want the two in /etc", got)
	}
	if got := commit.DefaultCertDirs(1000, "/cfg", "/home/u"); got[0] != "/cfg/containers/certs.d" || got[1] != "/home/u/.config/docker/certs.d" {
		t.Errorf("DefaultCertDirs(XDG_CONFIG_HOME=/cfg) = %q, want $XDG_CONFIG_HOME/containers/certs.d first", got)
	}
}

// TestCertsDirClientCertificate: a registry that wants a client
// certificate gets the one in certs.d (client.cert + client.key).
func TestCertsDirClientCertificate(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true, ClientCert: true})
	_, containersDir := withCertDirs(t)
	r.WriteCertsD(t, containersDir)
	tag := r.Addr + "/strata/app:v1"
	if _, err := commit.Push(t.Context(), motdImage(t, "client cert\n"), tagsOf(t, []string{tag}), commit.RegistryOptions{}); err != nil {
		t.Fatalf("Push with a client certificate in %s: %v", containersDir, commit.RegistryError(tag, err))
	}
	if _, err := pullRef(t, tag, commit.PullOptions{}); err != nil {
		t.Fatalf("Pull: %v", commit.RegistryError(tag, err))
	}
}

// TestCertsDirClientCertificateMissing: a registry that wants a client
// certificate and gets none says so, and where to put one, by its IP
// (where ggcr also tries plain HTTP) and by its name.
func TestCertsDirClientCertificateMissing(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true, ClientCert: true})
	dockerDir, _ := withCertDirs(t)
	for _, host := range []string{r.Addr, r.Host} {
		if err := os.MkdirAll(filepath.Join(dockerDir, host), 0o755); err != nil {
			t.Fatal(err)
		}
		ca, err := os.ReadFile(r.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dockerDir, host, "ca.crt"), ca, 0o644); err != nil {
			t.Fatal(err)
		}
		ref := host + "/strata/app:v1"
		err = pullErr(t, ref)
		want := []string{"registry " + host + " refused the TLS connection: ",
			"if the registry wants a client certificate, put it in " + filepath.Join(dockerDir, host) + "/client.cert"}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Pull(%s) without a client certificate = %v\nwant it to say %q", ref, err, w)
			}
		}
	}
}

// TestCertsDirBadFiles: a key without its certificate is an error naming
// the file, as in docker.
func TestCertsDirBadFiles(t *testing.T) {
	dockerDir, _ := withCertDirs(t)
	host := "registry.invalid:5000"
	if err := os.MkdirAll(filepath.Join(dockerDir, host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dockerDir, host, "client.key"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := pullRef(t, host+"/app:1", commit.PullOptions{})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dockerDir, host, "client.key")+" has no client certificate client.cert") {
		t.Errorf("Pull = %v, want an error naming the lone key", err)
	}
}

func TestRegistryErrorNotFound(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{})
	if _, err := commit.Push(t.Context(), motdImage(t, "stable\n"), tagsOf(t, []string{r.Addr + "/library/debian:stable"}), commit.RegistryOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, ref string }{
		{"unknown-tag", r.Addr + "/library/debian:bookworm"},
		{"unknown-repository", r.Addr + "/library/nothing:1"},
		{"unknown-digest", r.Addr + "/library/debian@sha256:" + strings.Repeat("0", 64)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := pullErr(t, tc.ref)
			var te *transport.Error
			if !errors.As(err, &te) {
				t.Errorf("errors.As(%v, *transport.Error) = false, want the cause kept", err)
			}
			golden(t, tc.name, err.Error(), r.Addr, "127.0.0.1:PORT")
		})
	}
}

func TestRegistryErrorUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	err = pullErr(t, addr+"/library/debian:bookworm")
	golden(t, "unreachable", err.Error(), addr, "127.0.0.1:PORT")

	// A name that does not resolve: .invalid never does (RFC 2606); the
	// error is made here rather than asked of a resolver that may be absent.
	dnsErr := &net.DNSError{Err: "no such host", Name: "registry.invalid", IsNotFound: true}
	err = commit.RegistryError("registry.invalid/app:1", fmt.Errorf("pulling: %w", dnsErr))
	golden(t, "no-such-host", err.Error())
	if !errors.Is(err, dnsErr) {
		t.Errorf("errors.Is(%v, the DNS error) = false", err)
	}
}

// TestRegistryErrorOtherHostUnreachable: a token server or a proxy that
// cannot be reached is named, not taken for the registry.
func TestRegistryErrorOtherHostUnreachable(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	err := commit.RegistryError("127.0.0.1:5000/app:1", fmt.Errorf("pulling: %w",
		&url.Error{Op: "Get", URL: "https://127.0.0.1:5001/token?scope=repository%3Aapp%3Apull", Err: refused}))
	golden(t, "token-server-unreachable", err.Error())
	// As net/http makes it: the proxy's address on the dial error inside.
	proxy := &net.OpError{Op: "proxyconnect", Net: "tcp", Err: &net.OpError{Op: "dial", Net: "tcp",
		Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}, Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	err = commit.RegistryError("registry.example:5000/app:1", fmt.Errorf("pulling: %w",
		&url.Error{Op: "Get", URL: "https://registry.example:5000/v2/", Err: proxy}))
	golden(t, "proxy-unreachable", err.Error())
}

// TestRefusedAuthFileSaysWhereToLogIn: credentials refused from
// REGISTRY_AUTH_FILE, which is read before the docker config, are
// replaced where they are (podman login --authfile), not with docker
// login, which writes the docker config.
func TestRefusedAuthFileSaysWhereToLogIn(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true, Auth: true})
	dockerDir, _ := withCertDirs(t)
	r.WriteCertsD(t, dockerDir)
	ref := r.Addr + "/strata/app:v1"
	home := isolateCredentials(t, `{"auths": {"`+r.Addr+`": {"auth": "`+basicAuth(r.User, r.Password)+`"}}}`)
	// Named config.json, as some CI images name it: its place, not its
	// name, says docker login does not write it.
	if err := os.Mkdir(filepath.Join(home, "ci"), 0o700); err != nil {
		t.Fatal(err)
	}
	authFile := filepath.Join(home, "ci", "config.json")
	if err := os.WriteFile(authFile, []byte(`{"auths": {"`+r.Addr+`": {"auth": "`+basicAuth(r.User, "stale")+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("REGISTRY_AUTH_FILE", authFile)
	err := pullErr(t, ref)
	if want := "log in again with: podman login --authfile " + authFile + " " + r.Addr; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("pull = %v, want it to say %q", err, want)
	}
}

// TestRegistryErrorCredentials: missing credentials (no file, no entry)
// versus credentials the registry refused (a file entry with an https://
// key, a credential helper), pulling and pushing.
func TestRegistryErrorCredentials(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true, Auth: true})
	dockerDir, _ := withCertDirs(t)
	r.WriteCertsD(t, dockerDir)
	good, wrong := basicAuth(r.User, r.Password), basicAuth(r.User, "wrong")
	ref := r.Addr + "/strata/app:v1"
	if _, err := commit.Push(t.Context(), motdImage(t, "auth\n"), tagsOf(t, []string{ref}), commit.RegistryOptions{Keychain: staticKeychain(good)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, config string
		push         bool
	}{
		{"no-config-file", "", false},
		{"no-entry", `{"auths": {"other.example": {"auth": "` + good + `"}}}`, false},
		{"wrong-password", `{"auths": {"https://` + r.Addr + `": {"auth": "` + wrong + `"}}}`, false},
		{"wrong-password-push", `{"auths": {"` + r.Addr + `": {"auth": "` + wrong + `"}}}`, true},
		{"helper-refused", `{"credHelpers": {"` + r.Addr + `": "stratatest"}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := isolateCredentials(t, tc.config)
			credentialHelper(t, "stratatest", r.User, "wrong")
			var err error
			if tc.push {
				_, err = commit.Push(t.Context(), motdImage(t, "again\n"), tagsOf(t, []string{ref}), commit.RegistryOptions{})
				err = commit.RegistryError(ref, err)
			} else {
				err = pullErr(t, ref)
			}
			golden(t, tc.name, fmt.Sprint(err), r.Addr, "127.0.0.1:PORT", home, "$HOME",
				fmt.Sprintf("/run/containers/%d/", os.Getuid()), "/run/containers/UID/")
			var te *transport.Error
			if !errors.As(err, &te) {
				t.Errorf("errors.As(%v, *transport.Error) = false, want the cause kept", err)
			}
		})
	}

	// The right answers, from the file and from a helper, are accepted.
	for name, config := range map[string]string{
		"file":   `{"auths": {"https://` + r.Addr + `/v1/": {"auth": "` + good + `"}}}`,
		"helper": `{"auths": {"` + r.Addr + `": {"auth": "` + wrong + `"}}, "credHelpers": {"` + r.Addr + `": "stratatest"}}`,
	} {
		t.Run("accepted from "+name, func(t *testing.T) {
			isolateCredentials(t, config)
			credentialHelper(t, "stratatest", r.User, r.Password)
			if _, err := pullRef(t, ref, commit.PullOptions{}); err != nil {
				t.Errorf("Pull: %v", commit.RegistryError(ref, err))
			}
		})
	}
}

// staticKeychain answers one basic auth for every registry.
type staticKeychain string

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.FromConfig(authn.AuthConfig{Auth: string(k)}), nil
}

// Errors that are not a registry problem pass through unchanged; a
// message is not made twice.
func TestRegistryErrorPassThrough(t *testing.T) {
	if err := commit.RegistryError("x:1", nil); err != nil {
		t.Errorf("RegistryError(nil) = %v, want nil", err)
	}
	other := errors.New("writing the layout: disk full")
	if err := commit.RegistryError("x:1", other); err != other { //nolint:errorlint // the very same error, not one wrapping it
		t.Errorf("RegistryError(%v) = %v, want it unchanged", other, err)
	}
	dnsErr := &net.DNSError{Err: "no such host", Name: "registry.invalid", IsNotFound: true}
	once := commit.RegistryError("registry.invalid/app:1", dnsErr)
	if twice := commit.RegistryError("registry.invalid/app:1", fmt.Errorf("again: %w", once)); !strings.HasPrefix(twice.Error(), "again: ") {
		t.Errorf("RegistryError twice = %q, want the first message kept as it was wrapped", twice)
	}
}

// A registry named insecure is reached over TLS without verifying its
// certificate, through the per-host transport.
func TestInsecureRegistrySkipsVerify(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true})
	withCertDirs(t)
	tag := r.Addr + "/strata/app:v1"
	insecure := []string{r.Addr}
	if _, err := commit.Push(t.Context(), motdImage(t, "insecure\n"), tagsOf(t, []string{tag}), commit.RegistryOptions{Insecure: insecure}); err != nil {
		t.Fatalf("Push to an insecure registry: %v", commit.RegistryError(tag, err))
	}
	if _, err := pullRef(t, tag, commit.PullOptions{RegistryOptions: commit.RegistryOptions{Insecure: insecure}}); err != nil {
		t.Fatalf("Pull from an insecure registry: %v", commit.RegistryError(tag, err))
	}
}

// A 403 with credentials says they were refused for the repository, not
// that they are missing. (distribution's htpasswd auth never answers 403,
// so the registry's answer is made here.)
func TestRegistryErrorForbidden(t *testing.T) {
	home := isolateCredentials(t, `{"auths": {"registry.example": {"auth": "`+basicAuth("me", "secret")+`"}}}`)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://registry.example/v2/team/app/manifests/1", nil)
	if err != nil {
		t.Fatal(err)
	}
	denied := &transport.Error{StatusCode: http.StatusForbidden, Request: req,
		Errors: []transport.Diagnostic{{Code: transport.DeniedErrorCode, Message: "requested access to the resource is denied"}}}
	err = commit.RegistryError("registry.example/team/app:1", fmt.Errorf("pulling: %w", denied))
	golden(t, "forbidden", err.Error(), home, "$HOME")
}

// TestRegistryErrorInsufficientScope: a registry that takes the login
// but answers 401 with error="insufficient_scope" (distribution, GitLab
// and Harbor, where others answer 403) says the account may not pull
// from or push to the repository, not to log in again.
func TestRegistryErrorInsufficientScope(t *testing.T) {
	var addr string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		realm := fmt.Sprintf(`Bearer realm="http://%s/token",service="fake"`, addr)
		switch req.URL.Path {
		case "/token":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"token": "pull-only"}`)
			return
		case "/v2/":
			w.Header().Set("WWW-Authenticate", realm)
		default:
			scope := "repository:team/app:pull"
			if req.Method != http.MethodGet || strings.Contains(req.URL.Path, "/blobs/") {
				scope += ",push"
			}
			w.Header().Set("WWW-Authenticate", realm+`,scope="`+scope+`",error="insufficient_scope"`)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
	}))
	t.Cleanup(srv.Close)
	addr = strings.TrimPrefix(srv.URL, "http://")
	home := isolateCredentials(t, `{"auths": {"`+addr+`": {"auth": "`+basicAuth("reader", "secret")+`"}}}`)
	ref := addr + "/team/app:1"

	err := pullErr(t, ref)
	golden(t, "insufficient-scope-pull", err.Error(), addr, "127.0.0.1:PORT", home, "$HOME")

	_, err = commit.Push(t.Context(), motdImage(t, "scope\n"), tagsOf(t, []string{ref}), commit.RegistryOptions{})
	err = commit.RegistryError(ref, err)
	golden(t, "insufficient-scope-push", fmt.Sprint(err), addr, "127.0.0.1:PORT", home, "$HOME")
}

// TestDockerAuthConfigWithoutFile: DOCKER_AUTH_CONFIG counts without any
// credentials file, as in docker-cli; what it lacks is reported as such.
func TestDockerAuthConfigWithoutFile(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true, Auth: true})
	dockerDir, _ := withCertDirs(t)
	r.WriteCertsD(t, dockerDir)
	good, wrong := basicAuth(r.User, r.Password), basicAuth(r.User, "wrong")
	ref := r.Addr + "/strata/app:v1"
	if _, err := commit.Push(t.Context(), motdImage(t, "env\n"), tagsOf(t, []string{ref}), commit.RegistryOptions{Keychain: staticKeychain(good)}); err != nil {
		t.Fatal(err)
	}
	isolateCredentials(t, "")

	t.Setenv("DOCKER_AUTH_CONFIG", `{"auths": {"`+r.Addr+`": {"auth": "`+good+`"}}}`)
	if _, err := pullRef(t, ref, commit.PullOptions{}); err != nil {
		t.Errorf("Pull with DOCKER_AUTH_CONFIG and no config file: %v", commit.RegistryError(ref, err))
	}

	t.Setenv("DOCKER_AUTH_CONFIG", `{"auths": {"`+r.Addr+`": {"auth": "`+wrong+`"}}}`)
	if err := pullErr(t, ref); !strings.Contains(err.Error(), "in DOCKER_AUTH_CONFIG were refused") {
		t.Errorf("Pull with wrong credentials in DOCKER_AUTH_CONFIG: %v; want it to say where they came from", err)
	}

	t.Setenv("DOCKER_AUTH_CONFIG", `{"auths": {"other.example": {"auth": "`+good+`"}}}`)
	if err := pullErr(t, ref); !strings.Contains(err.Error(), "no credentials for "+r.Addr+" in DOCKER_AUTH_CONFIG") {
		t.Errorf("Pull with DOCKER_AUTH_CONFIG for another registry: %v; want it to say DOCKER_AUTH_CONFIG has none", err)
	}
}

// TestCredHelperBeforeCredsStore: with a credHelpers entry for the
// registry, its helper alone is asked, as docker does: the repository
// is not first looked up in credsStore (here not even installed).
func TestCredHelperBeforeCredsStore(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true, Auth: true})
	dockerDir, _ := withCertDirs(t)
	r.WriteCertsD(t, dockerDir)
	ref := r.Addr + "/strata/app:v1"
	if _, err := commit.Push(t.Context(), motdImage(t, "helper\n"), tagsOf(t, []string{ref}), commit.RegistryOptions{Keychain: staticKeychain(basicAuth(r.User, r.Password))}); err != nil {
		t.Fatal(err)
	}
	isolateCredentials(t, `{"credsStore": "strata-absent", "credHelpers": {"`+r.Addr+`": "stratatest"}}`)
	credentialHelper(t, "stratatest", r.User, r.Password)
	if _, err := pullRef(t, ref, commit.PullOptions{}); err != nil {
		t.Errorf("Pull: %v", commit.RegistryError(ref, err))
	}
}

// TestRegistryErrorOtherStatus: an answer RegistryError has no words of
// its own for still names the reference and says the HTTP status.
func TestRegistryErrorOtherStatus(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		status int
		body   string
		want   string
	}{
		{"500", http.MethodGet, http.StatusInternalServerError, "oops", "500 Internal Server Error"},
		{"denied put", http.MethodPut, http.StatusMethodNotAllowed,
			`{"errors":[{"code":"DENIED","message":"tag is immutable"}]}`, "405 Method Not Allowed: PUT "},
		{"toomanyrequests", http.MethodHead, http.StatusTooManyRequests, "", "429 Too Many Requests"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tc.method, "https://registry.example/v2/team/app/manifests/1", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp := &http.Response{StatusCode: tc.status, Request: req, Body: io.NopCloser(strings.NewReader(tc.body))}
			cause := transport.CheckError(resp, http.StatusOK)
			if cause == nil {
				t.Fatal("CheckError = nil")
			}
			ref := "registry.example/team/app:1"
			err = commit.RegistryError(ref, fmt.Errorf("pushing: %w", cause))
			msg := err.Error()
			if !strings.HasPrefix(msg, ref+": ") || !strings.Contains(msg, tc.want) {
				t.Errorf("RegistryError = %q, want it to start with %q and say %q", msg, ref+": ", tc.want)
			}
			if !errors.Is(err, cause) {
				t.Errorf("errors.Is(%v, the registry's answer) = false", err)
			}
		})
	}
}
