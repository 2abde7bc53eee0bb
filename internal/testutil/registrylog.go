package testutil

import (
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Request is one line of the registry's access log.
type Request struct {
	Method string
	// Path is the request's path and query as sent (still escaped).
	Path string
	// Status is the HTTP status the registry answered.
	Status int
}

// AccessLog reads the registry's access log: every request so far, in the
// order the registry finished them.
func (r *Registry) AccessLog(t testing.TB) []Request {
	t.Helper()
	b, err := os.ReadFile(r.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []Request
	for _, line := range strings.Split(string(b), "\n") {
		// Access log lines are in Apache combined format:
		// 127.0.0.1 - - [date] "PATCH /v2/… HTTP/1.1" 202 0 "" "agent"
		_, req, ok := strings.Cut(line, `"`)
		if !ok {
			continue
		}
		req, rest, ok := strings.Cut(req, `"`)
		if !ok {
			continue
		}
		m, p, _ := strings.Cut(req, " ")
		p, _, _ = strings.Cut(p, " ")
		status, _ := strconv.Atoi(strings.Fields(rest + " 0")[0])
		out = append(out, Request{Method: m, Path: p, Status: status})
	}
	return out
}

// Requests counts the requests of the access log with method whose path
// contains pathPart, e.g. Requests("PATCH", "/blobs/uploads/").
func (r *Registry) Requests(t testing.TB, method, pathPart string) int {
	t.Helper()
	n := 0
	for _, q := range r.AccessLog(t) {
		if q.Method == method && strings.Contains(q.Path, pathPart) {
			n++
		}
	}
	return n
}

// Upload is a blob upload the registry completed.
type Upload struct {
	// Repo is the repository the blob was uploaded into, e.g. "cache/app".
	Repo string
	// Digest is the blob's digest, "sha256:…".
	Digest string
}

// Uploads lists, in log order, the blob uploads the registry completed:
// the final PUT of a chunked upload, or a monolithic POST, each carrying
// the digest (successful answers only). A cross-repository mount is not
// an upload.
func (r *Registry) Uploads(t testing.TB) []Upload {
	t.Helper()
	var out []Upload
	for _, q := range r.AccessLog(t) {
		if (q.Method != "PUT" && q.Method != "POST") || q.Status/100 != 2 {
			continue
		}
		u, err := url.Parse(q.Path)
		if err != nil {
			continue
		}
		repo, _, ok := strings.Cut(strings.TrimPrefix(u.Path, "/v2/"), "/blobs/uploads/")
		digest := u.Query().Get("digest")
		if !ok || digest == "" || u.Query().Get("mount") != "" {
			continue
		}
		out = append(out, Upload{Repo: repo, Digest: digest})
	}
	return out
}
