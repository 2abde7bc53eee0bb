package commit

import (
	"net/http"
	"strings"
	"testing"
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
