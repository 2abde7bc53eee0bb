package commit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// recordTransport records the hosts it was asked to reach.
type recordTransport struct{ hosts []string }

func (r *recordTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.hosts = append(r.hosts, req.URL.Host)
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: req}, nil
}

func TestGuardTransport(t *testing.T) {
	for _, tc := range []struct {
		url      string
		insecure []string
		allowed  bool
	}{
		{"https://registry.example:5000/v2/", nil, true},
		{"http://127.0.0.1:5000/v2/", nil, true},
		{"http://[::1]:5000/v2/", nil, true},
		{"http://localhost:5000/v2/", nil, true},
		{"http://10.1.2.3:5000/v2/", nil, false},
		{"http://registry.example/v2/", nil, false},
		{"http://registry.example/v2/", []string{"other.example"}, false},
		{"http://registry.example/v2/", []string{"registry.example"}, true},
		{"http://10.1.2.3:5000/v2/", []string{"10.1.2.3:5000"}, true},
	} {
		t.Run(tc.url, func(t *testing.T) {
			rec := &recordTransport{}
			g := RegistryOptions{Insecure: tc.insecure, Transport: rec}.guard()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := g.RoundTrip(req)
			if resp != nil {
				resp.Body.Close()
			}
			if got := err == nil; got != tc.allowed {
				t.Fatalf("RoundTrip(%s) with insecure %q: err = %v, want allowed = %v", tc.url, tc.insecure, err, tc.allowed)
			}
			if !tc.allowed && !strings.Contains(err.Error(), "insecure") {
				t.Errorf("refusal %q does not say how to allow it", err)
			}
			if tc.allowed != (len(rec.hosts) == 1) {
				t.Errorf("transport reached %q, want a request only when allowed", rec.hosts)
			}
		})
	}
}

// setTimeouts makes the registry timeouts short for the test.
func setTimeouts(t *testing.T, header, idle time.Duration) {
	t.Helper()
	savedHeader, savedIdle := responseHeaderTimeout, bodyIdleTimeout
	responseHeaderTimeout, bodyIdleTimeout = header, idle
	t.Cleanup(func() { responseHeaderTimeout, bodyIdleTimeout = savedHeader, savedIdle })
}

// A registry that accepts the connection and never answers fails the
// request, saying so, instead of hanging it.
func TestResponseHeaderTimeout(t *testing.T) {
	setTimeouts(t, 300*time.Millisecond, time.Minute)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+l.Addr().String()+"/v2/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := RegistryOptions{}.guard().RoundTrip(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("RoundTrip to a registry that never answers succeeded")
	}
	ref := l.Addr().String() + "/app:1"
	if msg := RegistryError(ref, err).Error(); !strings.Contains(msg, "sent no answer within 300ms") {
		t.Errorf("RegistryError = %q, want it to say the registry sent no answer", msg)
	}
}

// A body read that waits bodyIdleTimeout for data fails; a slow body that
// keeps coming, or a reader slow between reads, does not.
func TestBodyIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	setTimeouts(t, time.Minute, idle)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := w.(http.Flusher)
		switch r.URL.Path {
		case "/stalls":
			w.Write([]byte("start"))
			f.Flush()
			<-r.Context().Done()
		case "/trickles":
			for range 8 {
				w.Write([]byte("x"))
				f.Flush()
				time.Sleep(idle / 2)
			}
		case "/whole":
			w.Write([]byte("all at once"))
		}
	}))
	defer srv.Close()
	get := func(path string, pause time.Duration) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := RegistryOptions{}.guard().RoundTrip(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var got []byte
		buf := make([]byte, 1)
		for {
			n, err := resp.Body.Read(buf)
			got = append(got, buf[:n]...)
			if errors.Is(err, io.EOF) {
				return string(got), nil
			}
			if err != nil {
				return string(got), err
			}
			time.Sleep(pause) // once, after the first byte
			pause = 0
		}
	}
	var stalled *StalledError
	if got, err := get("/stalls", 0); !errors.As(err, &stalled) {
		t.Errorf("a stalled body: read %q, %v; want a StalledError", got, err)
	}
	if got, err := get("/trickles", 0); err != nil || got != "xxxxxxxx" {
		t.Errorf("a slow body: read %q, %v; want it whole", got, err)
	}
	if got, err := get("/whole", 2*idle); err != nil || got != "all at once" {
		t.Errorf("a slow reader: read %q, %v; want it whole", got, err)
	}
}

// TestManifestNotFound: a base is missing when the registry answers so
// for its manifest, not when the host answers 404 to the API's ping (no
// registry there) or to a blob (the registry lost what a manifest names).
func TestManifestNotFound(t *testing.T) {
	answer := func(path string, status int, code transport.ErrorCode) error {
		te := &transport.Error{StatusCode: status, Request: &http.Request{URL: &url.URL{Path: path}}}
		if code != "" {
			te.Errors = []transport.Diagnostic{{Code: code}}
		}
		return fmt.Errorf("pulling: %w", te)
	}
	for _, tc := range []struct {
		name, ref string
		err       error
		want      bool
	}{
		{"manifest 404", "reg/library/busybx", answer("/v2/library/busybx/manifests/latest", http.StatusNotFound, ""), true},
		{"MANIFEST_UNKNOWN", "reg/library/busybox:latst", answer("/v2/library/busybox/manifests/latst", http.StatusNotFound, transport.ManifestUnknownErrorCode), true},
		{"NAME_UNKNOWN", "reg/nope:1", answer("/v2/nope/manifests/1", http.StatusNotFound, transport.NameUnknownErrorCode), true},
		{"digest", "reg/x@sha256:0000000000000000000000000000000000000000000000000000000000000000", answer("/v2/x/manifests/sha256:0000000000000000000000000000000000000000000000000000000000000000", http.StatusNotFound, transport.ManifestUnknownErrorCode), true},
		{"another platform's, of an index", "reg/multi:idx", answer("/v2/multi/manifests/sha256:29", http.StatusNotFound, transport.ManifestUnknownErrorCode), false},
		{"ping 404", "reg/x:1", answer("/v2/", http.StatusNotFound, ""), false},
		{"blob 404", "reg/library/busybox", answer("/v2/library/busybox/blobs/sha256:ab", http.StatusNotFound, ""), false},
		{"manifest 500", "reg/library/busybox", answer("/v2/library/busybox/manifests/latest", http.StatusInternalServerError, ""), false},
		{"not an answer", "reg/x:1", errors.New("connection refused"), false},
	} {
		if got := ManifestNotFound(tc.err, tc.ref); got != tc.want {
			t.Errorf("%s: ManifestNotFound = %t, want %t", tc.name, got, tc.want)
		}
	}
}

// redirectingTransport answers a request to from with a 307 to to, and
// any other with 200; it records the requests it was asked.
type redirectingTransport struct {
	from, to string
	reqs     []*http.Request
}

func (r *redirectingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.reqs = append(r.reqs, req)
	resp := &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Header: http.Header{}, Request: req}
	if req.URL.Host == r.from {
		resp.StatusCode = http.StatusTemporaryRedirect
		resp.Header.Set("Location", "https://"+r.to+req.URL.Path)
	}
	return resp, nil
}

// TestPrivateRedirect: the guard follows a blob redirect from a registry
// on a private address to another private address itself, without the
// registry's credentials; one from a public address or a DNS name, or to
// a link-local address, it hands back to ggcr's client, which refuses it.
func TestPrivateRedirect(t *testing.T) {
	for _, tc := range []struct {
		from, to string
		followed bool
	}{
		{"10.0.0.1:5000", "10.0.0.2:9000", true},
		{"127.0.0.1:5000", "127.0.0.1:9000", true}, // another port: another server, no credentials
		{"192.168.1.5", "127.0.0.1:9000", true},
		{"127.0.0.1:5000", "[fd00::2]:9000", true},
		{"203.0.113.7", "10.0.0.2:9000", false},
		{"registry.example", "10.0.0.2:9000", false},
		{"10.0.0.1:5000", "169.254.169.254", false},
		{"10.0.0.1:5000", "storage.example", false},
	} {
		t.Run(tc.from+" to "+tc.to, func(t *testing.T) {
			rt := &redirectingTransport{from: tc.from, to: tc.to}
			g := RegistryOptions{Transport: rt}.guard()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+tc.from+"/v2/app/blobs/sha256:1", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer registry-token")
			resp, err := g.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.StatusCode == http.StatusOK; got != tc.followed {
				t.Fatalf("RoundTrip: status %d after asking %d hosts, want followed = %v", resp.StatusCode, len(rt.reqs), tc.followed)
			}
			if !tc.followed {
				return
			}
			last := rt.reqs[len(rt.reqs)-1]
			if last.URL.Host != tc.to || last.Header.Get("Authorization") != "" {
				t.Errorf("followed to %s with Authorization %q, want %s without", last.URL.Host, last.Header.Get("Authorization"), tc.to)
			}
		})
	}
}
