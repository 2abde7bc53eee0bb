package commit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// nameOptions lets ggcr fall back to plain HTTP for hosts named insecure.
// ggcr also falls back for loopback and RFC 1918 hosts; guardTransport
// refuses the latter.
func (o RegistryOptions) nameOptions(registry string) []name.Option {
	if slices.Contains(o.Insecure, registry) {
		return []name.Option{name.Insecure}
	}
	return nil
}

func (o RegistryOptions) remote(ctx context.Context) []remote.Option {
	kc := o.Keychain
	if kc == nil {
		kc = defaultKeychain
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(kc),
		remote.WithTransport(o.guard()),
	}
}

// guard returns the transport to registries. Without a configured
// transport it trusts, per registry host, the system roots
// (SSL_CERT_FILE/SSL_CERT_DIR) plus the CAs in the host's certificate
// directories, and presents the client certificates found there (see
// CertDirs). It speaks plain HTTP only to loopback hosts and hosts named
// insecure, and does not verify the TLS certificates of the latter
// (docker's --insecure-registry semantics). A certificate the registry
// presents that cannot be verified gives an error saying which places
// were consulted and how to add the CA.
func (o RegistryOptions) guard() http.RoundTripper {
	g := &guardTransport{insecure: o.Insecure, certDirs: CertDirs, caller: o.Transport}
	if t, ok := o.Transport.(*http.Transport); ok && len(o.Insecure) > 0 {
		it := t.Clone()
		if it.TLSClientConfig == nil {
			it.TLSClientConfig = &tls.Config{}
		}
		it.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // only for hosts the user named insecure
		g.callerInsecure = it
	}
	return g
}

type guardTransport struct {
	insecure []string
	certDirs []string
	// caller is the transport given in the options (nil: built per host
	// from certDirs); callerInsecure is it without TLS verification.
	caller, callerInsecure http.RoundTripper
}

func (g *guardTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Host
	if via := redirectChain(req); len(via) >= maxRedirects {
		return nil, &RedirectError{Host: via[0].URL.Host, Method: via[0].Method, Path: via[0].URL.Path, Hops: len(via), Last: req.URL.String()}
	}
	insecure := slices.Contains(g.insecure, host)
	if !insecure && req.URL.Scheme == "http" && !isLoopback(req.URL.Hostname()) {
		return nil, fmt.Errorf("plain HTTP to %s refused: it is not a loopback host; name it as an insecure registry to allow it", host)
	}
	rt, tlsCfg, consulted, err := g.transportFor(host, insecure)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(req.Context())
	resp, err := rt.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		if req.URL.Scheme == "https" && tlsCfg != nil {
			err = probeClientCert(req.Context(), host, tlsCfg, err)
		}
		if req.URL.Scheme == "https" && isCertProblem(err) {
			return nil, &certError{host: host, certDir: g.certDirs, consulted: consulted, err: err}
		}
		return nil, err
	}
	resp.Body = newIdleBody(resp.Body, host, cancel)
	markScopeRefusal(resp)
	if next := privateRedirect(req, resp); next != nil {
		if err := resp.Body.Close(); err != nil {
			return nil, err
		}
		return g.RoundTrip(next)
	}
	return resp, nil
}

// privateRedirect is the request that follows resp, a redirect of a GET
// or HEAD from a registry on a private or loopback IP address to another
// such address (its storage: MinIO, an S3 gateway), or nil for any other
// answer. ggcr's client refuses a redirect to a private address from
// another host, so that a registry on the internet cannot send strata
// into the local network (a cloud's metadata service, 169.254.169.254);
// one from a registry already on the private network is followed here,
// before the client sees it, as docker and skopeo follow it. Link-local
// addresses are never followed to, nor is anything from a registry
// named by a DNS name (its address is not known here).
func privateRedirect(req *http.Request, resp *http.Response) *http.Request {
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
	default:
		return nil
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return nil
	}
	loc, err := resp.Location()
	if err != nil {
		return nil
	}
	origin := req
	if via := redirectChain(req); len(via) > 0 {
		origin = via[0]
	}
	if !onPrivateNetwork(origin.URL.Hostname()) || !onPrivateNetwork(loc.Hostname()) {
		return nil
	}
	next := req.Clone(req.Context())
	next.URL, next.Host, next.Response = loc, "", resp
	if loc.Host != req.URL.Host {
		// Credentials stay with their host and port (the registry's), as
		// ggcr's own transports keep them; another port is another server.
		for _, h := range []string{"Authorization", "Proxy-Authorization", "Www-Authenticate", "Cookie", "Cookie2"} {
			next.Header.Del(h)
		}
	}
	return next
}

// onPrivateNetwork reports whether host is a loopback or private
// (RFC 1918, RFC 4193) IP address.
func onPrivateNetwork(host string) bool {
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsPrivate()
}

// maxRedirects is how many redirects one request may follow, as Go's
// default client, docker and skopeo allow. ggcr replaces the client's
// redirect policy with one that sets no limit, so a registry redirecting
// a blob to itself would be asked forever.
const maxRedirects = 10

// redirectChain is the requests that led to req by redirects, the first
// (the one strata made) first; none if req was not redirected.
func redirectChain(req *http.Request) []*http.Request {
	var via []*http.Request
	for r := req.Response; r != nil && r.Request != nil; r = r.Request.Response {
		via = append(via, r.Request)
	}
	slices.Reverse(via)
	return via
}

// A RedirectError is a request a registry redirected maxRedirects times
// without an answer: a loop, or a misconfigured proxy or storage.
type RedirectError struct {
	Host, Method, Path string
	Hops               int
	// Last is where the last redirect pointed.
	Last string
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("registry %s redirected %s %s %d times without an answer (the last time to %s): stopped; is its storage or a proxy misconfigured?",
		e.Host, e.Method, e.Path, e.Hops, e.Last)
}

// bodyIdleTimeout is how long one read of a response body may wait for
// data before the connection is taken as stalled and closed. Only time
// spent waiting on the registry counts: a slow but progressing download
// is never cut, nor one whose reader is busy between reads.
var bodyIdleTimeout = 60 * time.Second

// idleBody is a response body whose reads fail with a *StalledError once
// one waits bodyIdleTimeout for data; cancel cancels the request.
type idleBody struct {
	io.ReadCloser
	host    string
	idle    time.Duration
	cancel  context.CancelFunc
	timer   *time.Timer
	stalled atomic.Bool
}

func newIdleBody(body io.ReadCloser, host string, cancel context.CancelFunc) *idleBody {
	b := &idleBody{ReadCloser: body, host: host, idle: bodyIdleTimeout, cancel: cancel}
	b.timer = time.AfterFunc(b.idle, func() {
		b.stalled.Store(true)
		cancel()
	})
	b.timer.Stop()
	return b
}

func (b *idleBody) Read(p []byte) (int, error) {
	if b.stalled.Load() {
		return 0, &StalledError{Host: b.host, Idle: b.idle}
	}
	b.timer.Reset(b.idle)
	n, err := b.ReadCloser.Read(p)
	b.timer.Stop()
	if err != nil && b.stalled.Load() {
		err = &StalledError{Host: b.host, Idle: b.idle}
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// A StalledError is a read of a registry's answer that waited too long
// for data: the connection was closed.
type StalledError struct {
	Host string
	Idle time.Duration
}

func (e *StalledError) Error() string {
	return fmt.Sprintf("registry %s sent no data for %s: connection closed as stalled", e.Host, e.Idle)
}

// Timeout reports that the error is a timeout (net.Error).
func (e *StalledError) Timeout() bool { return true }

// Temporary reports that a retry may succeed.
func (e *StalledError) Temporary() bool { return true }

// transportFor picks the transport for host, and its TLS configuration
// (nil for the caller's transport), and says where its trust comes from.
func (g *guardTransport) transportFor(host string, insecure bool) (http.RoundTripper, *tls.Config, []string, error) {
	if g.caller != nil {
		consulted := []string{"the HTTP transport strata's caller configured"}
		if insecure && g.callerInsecure != nil {
			return g.callerInsecure, nil, consulted, nil
		}
		return g.caller, nil, consulted, nil
	}
	hc := certsFor(g.certDirs, host)
	if hc.err != nil {
		return nil, nil, nil, hc.err
	}
	if insecure {
		return hc.insecure, hc.insecureTLS, hc.consulted, nil
	}
	return hc.secure, hc.secureTLS, hc.consulted, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// RegistryError turns an error from reaching the registry of reference ref
// (pulling, pushing, reading or writing a cache) into one message that
// says in plain words what failed and how to fix it:
//
//   - a TLS certificate that cannot be verified: where the CA was looked
//     for (the system roots, each certificate directory) and where to put it;
//   - 401/403: which credentials file was read, whether it had an entry for
//     the registry, which credential helper answered — no credentials,
//     versus credentials the registry refused;
//   - an unknown tag, repository or manifest;
//   - a registry that cannot be reached (connection refused, no such host,
//     timeout);
//   - any other answer of the registry (a 500, DENIED on a PUT): its
//     message, with the HTTP status.
//
// The message starts with ref; callers add what they were doing, not ref
// again. The result wraps err, so errors.Is and errors.As see the cause.
// Other errors (not from a registry) are returned unchanged, nil as nil.
func RegistryError(ref string, err error) error {
	if err == nil {
		return nil
	}
	var done *registryError
	if errors.As(err, &done) {
		return err
	}
	msg := describeRegistryError(ref, err)
	if msg == "" {
		return err
	}
	return &registryError{msg: ref + ": " + msg, err: err}
}

type registryError struct {
	msg string
	err error
}

func (e *registryError) Error() string { return e.msg }
func (e *registryError) Unwrap() error { return e.err }

// CertRefused reports whether err is a TLS failure with a registry whose
// certificate cannot be verified, or that wants a client certificate.
func CertRefused(err error) bool {
	var c *certError
	return errors.As(err, &c)
}

// AuthRefused reports whether err is a registry's refusal of the
// credentials (401 Unauthorized, 403 Forbidden).
func AuthRefused(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden)
}

// describeRegistryError is the message for err, or "" if it is not a
// registry problem it knows.
func describeRegistryError(ref string, err error) string {
	var (
		cert *certError
		te   *transport.Error
	)
	host, r := refHost(ref, err)
	var redir *RedirectError
	switch {
	case errors.As(err, &cert):
		return cert.Error()
	case errors.As(err, &redir):
		return redir.Error()
	case errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden):
		return authMessage(host, r, te)
	case errors.As(err, &te) && te.StatusCode == http.StatusNotFound:
		return notFoundMessage(host, r, te)
	}
	if m := unreachableMessage(err); m != "" {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "proxyconnect" {
			// net/http names the proxy on the dial error inside.
			proxy := "(HTTPS_PROXY or HTTP_PROXY)"
			if dial := (*net.OpError)(nil); errors.As(op.Err, &dial) && dial.Addr != nil {
				proxy = dial.Addr.String() + " " + proxy
			}
			return fmt.Sprintf("cannot reach registry %s through the proxy %s: the proxy: %s", host, proxy, m)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" && u.Host != host {
				return fmt.Sprintf("cannot reach %s, where registry %s sent strata (its token server or blob storage): %s", u.Host, host, m)
			}
		}
		return fmt.Sprintf("cannot reach registry %s: %s", host, m)
	}
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return fmt.Sprintf("registry %s speaks plain HTTP, not HTTPS; if that is intended, use --insecure-registry %s", host, host)
	}
	if errors.As(err, &te) {
		return statusMessage(host, te)
	}
	return ""
}

// statusMessage is the message of any other answer te of host: te's own
// (the request and what the registry said), with the HTTP status if it
// does not say it.
func statusMessage(host string, te *transport.Error) string {
	status := fmt.Sprintf("%d %s", te.StatusCode, http.StatusText(te.StatusCode))
	if msg := te.Error(); strings.Contains(msg, status) {
		return fmt.Sprintf("registry %s answered: %s", host, msg)
	}
	return fmt.Sprintf("registry %s answered %s: %s", host, status, te)
}

// refHost is the registry host of ref, or of the failed request when ref
// does not parse.
func refHost(ref string, err error) (string, name.Reference) {
	r, perr := name.ParseReference(ref)
	if perr == nil {
		return r.Context().RegistryStr(), r
	}
	var te *transport.Error
	if errors.As(err, &te) && te.Request != nil {
		return te.Request.URL.Host, nil
	}
	return ref, nil
}

// authMessage explains te, a 401 or 403 from host, with what the
// keychain found for it.
func authMessage(host string, r name.Reference, te *transport.Error) string {
	rep := authReportFor(host, r)
	status := te.StatusCode
	what := fmt.Sprintf("%d %s", status, http.StatusText(status))
	login := "log in with: docker login " + host
	if !rep.found {
		return fmt.Sprintf("the registry requires credentials (%s): %s; %s", what, rep.missing(), login)
	}
	if scope, refused := scopeRefused(te); refused && r != nil {
		// distribution, GitLab and Harbor answer 401, not 403, to an
		// account that logged in but may not use the repository.
		act := "pull from"
		if strings.Contains(scope, "push") || te.Request != nil && te.Request.Method != http.MethodGet && te.Request.Method != http.MethodHead {
			act = "push to"
		}
		return fmt.Sprintf("the credentials for %s %s were refused access to %s (%s, insufficient_scope): the account may not %s that repository; check its permissions there",
			host, rep.source(), r.Context().RepositoryStr(), what, act)
	}
	if status == http.StatusForbidden && r != nil {
		return fmt.Sprintf("the credentials for %s %s were refused access to %s (%s); check that the account may use that repository",
			host, rep.source(), r.Context().RepositoryStr(), what)
	}
	return fmt.Sprintf("the credentials for %s %s were refused (%s); %s", host, rep.source(), what, rep.relogin(host))
}

// relogin says how to replace refused credentials where they were found:
// docker login writes the docker config, not REGISTRY_AUTH_FILE or
// podman's auth.json, which are read first.
func (r authReport) relogin(host string) string {
	switch {
	case r.fromEnv:
		return "correct DOCKER_AUTH_CONFIG"
	case r.helper == "" && r.podman:
		return fmt.Sprintf("log in again with: podman login --authfile %s %s (or skopeo login)", r.file, host)
	}
	return "log in again with: docker login " + host
}

// scopeRefusal is the context key of the scope of an answer 401 whose
// challenge says error="insufficient_scope".
type scopeRefusal struct{}

// markScopeRefusal records in resp's request, which a *transport.Error
// of resp keeps, that resp is a 401 whose challenge says the token does
// not grant the access asked (error="insufficient_scope"), and the scope
// the challenge names: the login is good, the account may not do that.
func markScopeRefusal(resp *http.Response) {
	if resp.StatusCode != http.StatusUnauthorized || resp.Request == nil {
		return
	}
	for _, c := range resp.Header.Values("WWW-Authenticate") {
		if strings.Contains(c, `error="insufficient_scope"`) {
			scope := ""
			if _, rest, ok := strings.Cut(c, `scope="`); ok {
				scope, _, _ = strings.Cut(rest, `"`)
			}
			resp.Request = resp.Request.WithContext(context.WithValue(resp.Request.Context(), scopeRefusal{}, scope))
			return
		}
	}
}

// scopeRefused reports whether te is a 401 marked by markScopeRefusal,
// and the scope its challenge named.
func scopeRefused(te *transport.Error) (string, bool) {
	if te.StatusCode != http.StatusUnauthorized || te.Request == nil {
		return "", false
	}
	scope, ok := te.Request.Context().Value(scopeRefusal{}).(string)
	return scope, ok
}

// notFoundMessage explains a 404: an unknown tag, manifest or repository.
func notFoundMessage(host string, r name.Reference, te *transport.Error) string {
	if isPing(te) {
		return fmt.Sprintf("%s is not a registry: it answers %d %s to the registry API's /v2/ (a wrong port, or a proxy in the way?)",
			host, te.StatusCode, http.StatusText(te.StatusCode))
	}
	if asked, ok := manifestAsked(te); ok && r != nil && asked != r.Identifier() {
		// A manifest an index of r lists (another platform's).
		return fmt.Sprintf("registry %s has no manifest %s, which %s lists: the registry lost it", host, asked, r)
	}
	code := transport.ErrorCode("")
	if len(te.Errors) > 0 {
		code = te.Errors[0].Code
	}
	repo := ""
	if r != nil {
		repo = r.Context().RepositoryStr()
	}
	switch {
	case code == transport.NameUnknownErrorCode:
		return fmt.Sprintf("no such repository (registry %s has no repository %s)", host, repo)
	case r == nil:
		return "not found in registry " + host
	}
	if t, ok := r.(name.Tag); ok {
		// distribution answers MANIFEST_UNKNOWN for a repository it does
		// not have too, so the repository may not exist either.
		return fmt.Sprintf("no such tag (repository %s has no tag %s, or does not exist)", repo, t.TagStr())
	}
	return fmt.Sprintf("no such manifest (repository %s has no manifest %s)", repo, r.Identifier())
}

// isPing reports whether te answers the registry API's ping, GET /v2/.
func isPing(te *transport.Error) bool {
	return te.Request != nil && te.Request.URL != nil && strings.TrimSuffix(te.Request.URL.Path, "/") == "/v2"
}

// ManifestNotFound reports whether err is a registry's answer that it has
// no such repository, tag or manifest: MANIFEST_UNKNOWN or NAME_UNKNOWN,
// or a 404 to a manifest's request. A 404 to the API's ping (the host is
// no registry) or to a blob's (the registry lost what its manifest names)
// is not one.
//
// Only the manifest ref names counts: one an index of it lists (another
// platform's) that the registry lost is not a missing base either.
func ManifestNotFound(err error, ref string) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	r, perr := name.ParseReference(ref)
	if asked, ok := manifestAsked(te); perr != nil || !ok || asked != r.Identifier() {
		return false
	}
	for _, d := range te.Errors {
		if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
			return true
		}
	}
	return te.StatusCode == http.StatusNotFound
}

// manifestAsked is the tag or digest of the manifest whose request te
// answers; ok is false if te answers another request.
func manifestAsked(te *transport.Error) (ref string, ok bool) {
	if te.Request == nil || te.Request.URL == nil || !strings.Contains(te.Request.URL.Path, "/manifests/") {
		return "", false
	}
	return path.Base(te.Request.URL.Path), true
}

// unreachableMessage says in plain words why a connection failed, or ""
// if err is not a connection failure.
func unreachableMessage(err error) string {
	var (
		dns     *net.DNSError
		op      *net.OpError
		stalled *StalledError
	)
	switch {
	case errors.As(err, &dns) && dns.IsNotFound:
		return fmt.Sprintf("no such host (the name %s does not resolve) — check the name", dns.Name)
	case errors.As(err, &dns):
		return fmt.Sprintf("looking up %s failed (%s) — check the DNS configuration", dns.Name, dns.Err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused — is it running?"
	case errors.Is(err, syscall.ECONNRESET):
		return "the connection was reset — is it a registry, and is this the right port?"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to the host — check the network"
	case strings.Contains(err.Error(), "timeout awaiting response headers"): // net/http's, unexported
		return fmt.Sprintf("it accepted the connection but sent no answer within %s — is it overloaded, or not a registry?", responseHeaderTimeout)
	case errors.As(err, &stalled):
		return fmt.Sprintf("it sent no data for %s in the middle of an answer — is it overloaded?", stalled.Idle)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &op) && op.Timeout():
		return "timed out — is the address right, and is a proxy or firewall in the way?"
	}
	return ""
}
