package commit_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/testutil"
)

// fakeDockerd serves /_ping on a unix socket and returns its DOCKER_HOST
// and the number of pings it answered so far.
func fakeDockerd(t *testing.T) (host string, pings func() int) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	n := make(chan int, 1)
	n <- 0
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_ping" {
			http.NotFound(w, r)
			return
		}
		n <- <-n + 1
		fmt.Fprint(w, "OK")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "unix://" + sock, func() int { c := <-n; n <- c; return c }
}

// writeContext writes a docker context named name whose endpoint is host
// into the docker config dir dir, as `docker context create` does.
func writeContext(t *testing.T, dir, name, host string) {
	t.Helper()
	meta := filepath.Join(dir, "contexts", "meta", fmt.Sprintf("%x", sha256.Sum256([]byte(name))), "meta.json")
	if err := os.MkdirAll(filepath.Dir(meta), 0o755); err != nil {
		t.Fatal(err)
	}
	data := fmt.Sprintf(`{"Name":%q,"Metadata":{},"Endpoints":{"docker":{"Host":%q,"SkipTLSVerify":false}}}`, name, host)
	if err := os.WriteFile(meta, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCheckDaemon: --load finds the daemon as the docker CLI does —
// DOCKER_HOST, then DOCKER_CONTEXT, then the config's currentContext —
// and pings it before the build; a daemon that does not answer is an
// error saying where it was looked for.
func TestCheckDaemon(t *testing.T) {
	host, pings := fakeDockerd(t)
	config := t.TempDir()
	writeContext(t, config, "fake", host)
	writeContext(t, config, "gone", "unix://"+filepath.Join(t.TempDir(), "no.sock"))
	withCurrent := t.TempDir()
	writeContext(t, withCurrent, "fake", host)
	if err := os.WriteFile(filepath.Join(withCurrent, "config.json"), []byte(`{"auths":{},"currentContext":"fake"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	dead := "unix://" + filepath.Join(t.TempDir(), "docker.sock")
	for _, tc := range []struct {
		name                 string
		dockerHost, dockerCx string
		config               string
		want                 string // "" for an answered ping
	}{
		{"DOCKER_HOST", host, "", config, ""},
		{"DOCKER_HOST first", host, "gone", config, ""},
		{"DOCKER_CONTEXT", "", "fake", config, ""},
		{"currentContext", "", "", withCurrent, ""},
		{"DOCKER_CONTEXT over currentContext", "", "gone", withCurrent, `docker context "gone" not found`},
		{"dead DOCKER_HOST", dead, "", config, "no docker daemon answers at " + dead + " (DOCKER_HOST): "},
		{"dead context", "", "gone", config, `(docker context "gone")`},
		{"unknown context", "", "nosuch", config, `docker context "nosuch" not found`},
		{"default", "", "default", config, "no docker daemon answers at unix:///var/run/docker.sock (the default)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("DOCKER_HOST", tc.dockerHost)
			t.Setenv("DOCKER_CONTEXT", tc.dockerCx)
			t.Setenv("DOCKER_CONFIG", tc.config)
			if tc.name == "default" {
				if _, err := os.Stat("/var/run/docker.sock"); err == nil {
					t.Skip("a docker daemon's socket is at the default place")
				}
			}
			before := pings()
			err := commit.CheckDaemon(context.Background())
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("CheckDaemon() = %v", err)
			case tc.want == "" && pings() != before+1:
				t.Errorf("CheckDaemon() = nil, but the daemon was not pinged")
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("CheckDaemon() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	t.Run("CheckOutputs", func(t *testing.T) {
		t.Setenv("DOCKER_HOST", dead)
		err := commit.CheckOutputs(context.Background(), []commit.Output{{Type: commit.OutputDaemon}}, true)
		if err == nil || !strings.HasPrefix(err.Error(), "--load: no docker daemon answers at "+dead) {
			t.Errorf("CheckOutputs(--load) = %v, want the daemon's absence", err)
		}
	})
}

// TestDaemonTCPAsTheDockerCLI: a tcp:// host without a port is on 2375
// (2376 with TLS); a context that skips the certificate check speaks TLS
// with no TLS files, as the docker CLI does.
func TestDaemonTCPAsTheDockerCLI(t *testing.T) {
	t.Setenv("DOCKER_CONTEXT", "")
	t.Setenv("DOCKER_TLS_VERIFY", "")
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	t.Setenv("DOCKER_HOST", "tcp://127.0.0.1")
	if err := commit.CheckDaemon(context.Background()); err == nil || !strings.Contains(err.Error(), "127.0.0.1:2375") {
		t.Errorf("tcp://127.0.0.1 with nothing there: %v, want it to try port 2375", err)
	}

	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "OK") }))
	defer srv.Close()
	dir := t.TempDir()
	name := "skip"
	meta := filepath.Join(dir, "contexts", "meta", fmt.Sprintf("%x", sha256.Sum256([]byte(name))), "meta.json")
	if err := os.MkdirAll(filepath.Dir(meta), 0o755); err != nil {
		t.Fatal(err)
	}
	host := "tcp://" + strings.TrimPrefix(srv.URL, "https://")
	data := fmt.Sprintf(`{"Name":%q,"Metadata":{},"Endpoints":{"docker":{"Host":%q,"SkipTLSVerify":true}}}`, name, host)
	if err := os.WriteFile(meta, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_HOST", "")
	t.Setenv("DOCKER_CONFIG", dir)
	t.Setenv("DOCKER_CONTEXT", name)
	if err := commit.CheckDaemon(context.Background()); err != nil {
		t.Errorf("a context skipping the check, on a TLS daemon: %v", err)
	}
}

// TestCheckDaemonCanceled: a daemon that takes the connection and never
// answers holds --load's ping only until the build is stopped (^C), not
// for the ping's whole timeout.
func TestCheckDaemonCanceled(t *testing.T) {
	addr := testutil.SilentServer(t)
	t.Setenv("DOCKER_CONTEXT", "")
	t.Setenv("DOCKER_TLS_VERIFY", "")
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	t.Setenv("DOCKER_HOST", "tcp://"+addr)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := commit.CheckDaemon(ctx)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the ping took %v after its context ended", took)
	}
	if err == nil {
		t.Error("CheckDaemon() = nil for a daemon that never answered")
	}
}
