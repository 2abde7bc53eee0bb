package commit_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/testutil"
)

// frontRegistry serves r's API on addr (127.0.0.1:0 if empty), answering
// blob GETs with redirect(req) when it returns a URL; it counts the blob
// GETs it answered.
func frontRegistry(t *testing.T, r *testutil.Registry, addr string, redirect func(*http.Request) string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: r.Addr})
	var blobGets atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") {
			blobGets.Add(1)
			if to := redirect(req); to != "" {
				http.Redirect(w, req, to, http.StatusTemporaryRedirect)
				return
			}
		}
		proxy.ServeHTTP(w, req)
	}))
	if addr != "" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("listening on %s: %v", addr, err)
		}
		srv.Listener = l
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &blobGets
}

// TestRedirectLoop: a registry that redirects a blob to itself fails the
// pull after 10 redirects, saying so with the registry and the blob,
// instead of asking forever.
func TestRedirectLoop(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{})
	if err := remote.Write(tagsOf(t, []string{r.Addr + "/loop/app:1"})[0], motdImage(t, "hi\n")); err != nil {
		t.Fatal(err)
	}
	front, gets := frontRegistry(t, r, "", func(req *http.Request) string { return req.URL.Path })
	host := strings.TrimPrefix(front.URL, "http://")

	start := time.Now()
	img, err := pullRef(t, host+"/loop/app:1", commit.PullOptions{})
	if err == nil {
		_, err = img.ConfigFile()
	}
	if err == nil {
		t.Fatal("reading the config through a redirect loop succeeded")
	}
	err = commit.RegistryError(host+"/loop/app:1", err)
	t.Log(err)
	for _, want := range []string{"registry " + host, "/v2/loop/app/blobs/sha256:", "10 times"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not hold %q", err, want)
		}
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("failing took %s", took)
	}
	if n := gets.Load(); n > 11 {
		t.Errorf("the registry was asked for the blob %d times, want at most 11", n)
	}
}

// TestPrivateRedirectFollowed: a registry on a private (here loopback)
// address whose blobs redirect to its storage on another private address
// is pulled from, as docker and skopeo pull from it; ggcr alone refuses
// the redirect as a request forgery.
func TestPrivateRedirectFollowed(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{})
	img := motdImage(t, "from storage\n")
	if err := remote.Write(tagsOf(t, []string{r.Addr + "/priv/app:1"})[0], img); err != nil {
		t.Fatal(err)
	}
	storage, stored := frontRegistry(t, r, "127.0.0.2:0", func(*http.Request) string { return "" })
	front, _ := frontRegistry(t, r, "", func(req *http.Request) string { return storage.URL + req.URL.Path })
	ref := strings.TrimPrefix(front.URL, "http://") + "/priv/app:1"

	pulled, err := pullRef(t, ref, commit.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pulled.ConfigFile(); err != nil {
		t.Fatalf("reading the config through a redirect to 127.0.0.2: %v", err)
	}
	layers, err := pulled.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err == nil {
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
		}
		if err != nil {
			t.Fatalf("reading a layer through a redirect to 127.0.0.2: %v", err)
		}
	}
	if stored.Load() == 0 {
		t.Error("no blob was read from the storage host")
	}
}
