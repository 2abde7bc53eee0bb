package commit_test

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/testutil"
)

// An Uploader puts a layer in every repository the tags name and nothing
// else; the push after it uploads only what is left (the base layer and
// the config), and the image reads back whole.
func TestUploaderBeforePush(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true, Auth: true})
	t.Setenv("DOCKER_CONFIG", r.DockerConfig)
	opts := commit.RegistryOptions{Transport: r.Transport()}
	img := motdImage(t, "uploaded early\n")
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	step := ls[len(ls)-1]
	tags := tagsOf(t, []string{r.Addr + "/strata/app:v1", r.Addr + "/strata/app:latest", r.Addr + "/strata/other:v1"})

	u := commit.NewUploader(t.Context(), tags, opts, slog.New(slog.DiscardHandler))
	u.Add(step)
	u.Wait()
	for _, repo := range []string{"strata/app", "strata/other"} {
		if posts, patches := blobUploads(t, r, repo); posts != 1 || patches != 1 {
			t.Errorf("%s: %d uploads with %d chunks before the push, want the step's layer alone", repo, posts, patches)
		}
	}
	if _, err := remote.Head(tags[0], commit.RemoteOptions(t.Context(), opts)...); err == nil {
		t.Errorf("%s exists before the push", tags[0])
	}

	if _, err := commit.Push(t.Context(), img, tags, opts); err != nil {
		t.Fatalf("Push: %v", err)
	}
	if posts, _ := blobUploads(t, r, "strata/app"); posts != 3 {
		t.Errorf("strata/app: %d uploads in all, want 3 (the push adds the base layer and the config)", posts)
	}
	pulled, err := pullRef(t, tags[2].String(), commit.PullOptions{RegistryOptions: opts})
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if got, want := digestOf(t, pulled), digestOf(t, img); got != want {
		t.Errorf("pulled %s, pushed %s", got, want)
	}
}

// After Wait, Add starts nothing: the build waited for the uploads before
// its push.
func TestUploaderAddAfterWait(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{})
	tags := tagsOf(t, []string{r.Addr + "/strata/late:v1"})
	u := commit.NewUploader(t.Context(), tags, commit.RegistryOptions{}, slog.New(slog.DiscardHandler))
	u.Wait()
	u.Add(newLayer(t, map[string]string{"late": "x"}))
	u.Wait()
	if posts, _ := blobUploads(t, r, "strata/late"); posts != 0 {
		t.Errorf("%d uploads after Wait, want none", posts)
	}
}

// Without tags there is nothing to upload to: a nil Uploader, whose Add
// and Wait do nothing.
func TestUploaderWithoutTags(t *testing.T) {
	u := commit.NewUploader(t.Context(), nil, commit.RegistryOptions{}, slog.New(slog.DiscardHandler))
	if u != nil {
		t.Fatalf("NewUploader without tags = %v, want nil", u)
	}
	u.Add(nil)
	u.Wait()
}

// sentBodies is a transport counting, per repository, the bytes of the
// blob-upload PATCH bodies it has read (and so sent) so far. After
// headFirst, it holds a PUT naming a blob until a HEAD of a blob in the
// same repository has been answered (or 10 s): the order of an upload
// slower than the registry's answer.
type sentBodies struct {
	rt     http.RoundTripper
	mu     sync.Mutex
	n      map[string]*atomic.Int64 // by the request's path up to /blobs/
	headed map[string]chan struct{} // closed once a HEAD there is answered; nil: no holding
}

func (s *sentBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	repo, _, upload := strings.Cut(req.URL.Path, "/blobs/uploads/")
	switch {
	case req.Method == http.MethodPatch && upload && req.Body != nil:
		req = req.Clone(req.Context())
		req.Body = &countingReader{ReadCloser: req.Body, n: s.counter(repo)}
	case req.Method == http.MethodPut && upload:
		if headed := s.headedIn(repo); headed != nil {
			select {
			case <-headed:
			case <-time.After(10 * time.Second):
			}
		}
	case req.Method == http.MethodHead && strings.Contains(req.URL.Path, "/blobs/sha256:"):
		resp, err := s.rt.RoundTrip(req)
		repo, _, _ := strings.Cut(req.URL.Path, "/blobs/")
		if headed := s.headedIn(repo); headed != nil {
			s.mu.Lock()
			select {
			case <-headed:
			default:
				close(headed)
			}
			s.mu.Unlock()
		}
		return resp, err
	}
	return s.rt.RoundTrip(req)
}

// headFirst starts holding PUTs (see sentBodies).
func (s *sentBodies) headFirst() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.headed = map[string]chan struct{}{}
}

func (s *sentBodies) headedIn(repo string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.headed == nil {
		return nil
	}
	if s.headed[repo] == nil {
		s.headed[repo] = make(chan struct{})
	}
	return s.headed[repo]
}

func (s *sentBodies) counter(repo string) *atomic.Int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[repo] == nil {
		s.n[repo] = new(atomic.Int64)
	}
	return s.n[repo]
}

// WriteTo is the body's own, when it has one (net/http copies a body
// through it), counted.
func (r *countingReader) WriteTo(w io.Writer) (int64, error) {
	if wt, ok := r.ReadCloser.(io.WriterTo); ok {
		return wt.WriteTo(&countingWriter{w: w, n: r.n})
	}
	return io.Copy(w, struct{ io.Reader }{r})
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	k, err := c.w.Write(p)
	c.n.Add(int64(k))
	return k, err
}

// waitUploads is u.Wait, failing the test after a minute.
func waitUploads(t *testing.T, u *commit.Uploader) {
	t.Helper()
	done := make(chan struct{})
	go func() { u.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the uploads did not end within a minute")
	}
}

// streamedLayer starts compressing a layer whose tar writes 8 MiB of
// random bytes, then waits for release and ends with what last returns
// (more bytes, or an error); it returns the layer and the bytes of a
// whole tar (first, then more).
func streamedLayer(t *testing.T, q *commit.Compressor, diffID v1.Hash, release <-chan struct{}, last func(w io.Writer) error) *commit.Pending {
	t.Helper()
	first := make([]byte, 8<<20)
	rand.Read(first)
	return q.Add("", diffID, func(ctx context.Context, w io.Writer) error {
		if _, err := w.Write(first); err != nil {
			return err
		}
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return last(w)
	}, nil)
}

// waitSent waits until at least n bytes of an upload's body went out to
// each of repos.
func waitSent(t *testing.T, s *sentBodies, n int64, repos ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, repo := range repos {
		for s.counter("/v2/"+repo).Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d bytes uploaded while the layer is compressed, want %d or more", repo, s.counter("/v2/"+repo).Load(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// A layer still being compressed is uploaded as it is written, to every
// repository: most of its bytes are at the registry before its tar ends,
// the blob is named there only once whole, with its digest, and the push
// then finds it (one upload per repository, none by the push).
func TestUploaderStreamsWhileCompressing(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{})
	sent := &sentBodies{rt: r.Transport(), n: map[string]*atomic.Int64{}}
	opts := commit.RegistryOptions{Transport: sent}
	tags := tagsOf(t, []string{r.Addr + "/strata/app:v1", r.Addr + "/strata/other:v1"})
	q := commit.NewCompressor(t.Context(), t.TempDir(), commit.Gzip)
	defer q.Close()
	u := commit.NewUploader(t.Context(), tags, opts, slog.New(slog.DiscardHandler))

	release := make(chan struct{})
	more := []byte(strings.Repeat("the rest of the layer\n", 50000))
	p := streamedLayer(t, q, v1.Hash{}, release, func(w io.Writer) error {
		_, err := w.Write(more)
		return err
	})
	u.Add(p)
	waitSent(t, sent, 4<<20, "strata/app", "strata/other")
	if got := r.Uploads(t); len(got) != 0 {
		t.Errorf("blobs named in the registry before the layer is whole: %v", got)
	}
	close(release)
	waitUploads(t, u)
	l, err := p.Wait(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	dg, _ := l.Digest()
	size, _ := l.Size()
	for _, repo := range []string{"strata/app", "strata/other"} {
		if posts, _ := blobUploads(t, r, repo); posts != 1 {
			t.Errorf("%s: %d uploads, want 1", repo, posts)
		}
		ref, err := name.NewDigest(r.Addr + "/" + repo + "@" + dg.String())
		if err != nil {
			t.Fatal(err)
		}
		rl, err := remote.Layer(ref, commit.RemoteOptions(t.Context(), opts)...)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := rl.Compressed()
		if err != nil {
			t.Fatalf("%s: the blob: %v", repo, err)
		}
		n, err := io.Copy(io.Discard, rc) // checked against the digest as read
		rc.Close()
		if err != nil || n != size {
			t.Errorf("%s: read %d bytes of the blob (%v), want %d", repo, n, err, size)
		}
	}
	if got := r.Uploads(t); len(got) != 2 {
		t.Errorf("blobs named: %v, want the layer's in each repository", got)
	}

	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := commit.Push(t.Context(), img, tags, opts); err != nil {
		t.Fatalf("Push: %v", err)
	}
	if posts, _ := blobUploads(t, r, "strata/app"); posts != 2 {
		t.Errorf("strata/app: %d uploads in all, want 2 (the push adds only the config)", posts)
	}
}

// A layer whose blob is not made is never named in the registry, though
// most of it was uploaded: not when its tar fails, nor when its content is
// not the diffID it was added with.
func TestUploaderStreamOfAFailedLayer(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{})
	for _, tc := range []struct {
		name   string
		diffID v1.Hash
		last   func(w io.Writer) error
		want   string
	}{
		{"tar fails", v1.Hash{}, func(io.Writer) error { return errors.New("disk on fire") }, "disk on fire"},
		{"content changed", sha256Of([]byte("another tar")), func(io.Writer) error { return nil }, "content changed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sent := &sentBodies{rt: r.Transport(), n: map[string]*atomic.Int64{}}
			opts := commit.RegistryOptions{Transport: sent}
			repo := "strata/" + strings.ReplaceAll(tc.name, " ", "-")
			tags := tagsOf(t, []string{r.Addr + "/" + repo + ":v1"})
			q := commit.NewCompressor(t.Context(), t.TempDir(), commit.Gzip)
			defer q.Close()
			u := commit.NewUploader(t.Context(), tags, opts, slog.New(slog.DiscardHandler))
			release := make(chan struct{})
			p := streamedLayer(t, q, tc.diffID, release, tc.last)
			u.Add(p)
			waitSent(t, sent, 4<<20, repo)
			close(release)
			waitUploads(t, u)
			if _, err := p.Wait(t.Context()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("the layer's error: %v, want %q", err, tc.want)
			}
			if got := r.Uploads(t); len(got) != 0 {
				t.Errorf("blobs named in the registry: %v, want none", got)
			}
		})
	}
}

// A layer built again the same, whose blob the registry has already, is
// not named there again: its upload stops once the blob is whole and the
// registry says it has it (its PUT held until then, as a slow upload's
// would come after).
func TestUploaderStreamStopsForABlobThere(t *testing.T) {
	r := testutil.StartRegistry(t, testutil.RegistryOptions{})
	sent := &sentBodies{rt: r.Transport(), n: map[string]*atomic.Int64{}}
	opts := commit.RegistryOptions{Transport: sent}
	tags := tagsOf(t, []string{r.Addr + "/strata/again:v1"})
	first := make([]byte, 8<<20)
	rand.Read(first)
	more := []byte(strings.Repeat("the rest of the layer\n", 50000))
	var digests []v1.Hash
	for build := range 2 {
		if build == 1 {
			sent.headFirst()
		}
		q := commit.NewCompressor(t.Context(), t.TempDir(), commit.Gzip)
		defer q.Close()
		u := commit.NewUploader(t.Context(), tags, opts, slog.New(slog.DiscardHandler))
		release := make(chan struct{})
		p := q.Add("", v1.Hash{}, func(ctx context.Context, w io.Writer) error {
			if _, err := w.Write(first); err != nil {
				return err
			}
			<-release
			_, err := w.Write(more)
			return err
		}, nil)
		u.Add(p)
		waitSent(t, sent, sent.counter("/v2/strata/again").Load()+4<<20, "strata/again")
		close(release)
		waitUploads(t, u)
		d, err := p.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	if digests[0] != digests[1] {
		t.Fatalf("the same tar made blobs %s and %s", digests[0], digests[1])
	}
	if got := r.Uploads(t); len(got) != 1 {
		t.Errorf("blobs named in the registry: %v, want the first build's alone", got)
	}
}
