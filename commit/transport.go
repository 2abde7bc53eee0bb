package commit

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"slices"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// registryOptions is what Pull and Push share to reach a registry.
type registryOptions struct {
	insecure  []string
	keychain  authn.Keychain
	transport http.RoundTripper
}

// nameOptions lets ggcr fall back to plain HTTP for hosts named insecure.
// ggcr also falls back for loopback and RFC 1918 hosts; guardTransport
// refuses the latter.
func (o registryOptions) nameOptions(registry string) []name.Option {
	if slices.Contains(o.insecure, registry) {
		return []name.Option{name.Insecure}
	}
	return nil
}

func (o registryOptions) remote(ctx context.Context) []remote.Option {
	kc := o.keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(kc),
		remote.WithTransport(o.guard()),
	}
}

// guard wraps the configured transport (default: remote.DefaultTransport,
// which trusts the system roots and SSL_CERT_FILE/SSL_CERT_DIR) so that
// plain HTTP is only spoken to loopback hosts and hosts named insecure, and
// TLS certificates are not verified for the latter (docker's
// --insecure-registry semantics).
func (o registryOptions) guard() http.RoundTripper {
	base := o.transport
	if base == nil {
		base = remote.DefaultTransport
	}
	g := &guardTransport{secure: base, insecureTLS: base, insecure: o.insecure}
	if t, ok := base.(*http.Transport); ok && len(o.insecure) > 0 {
		it := t.Clone()
		if it.TLSClientConfig == nil {
			it.TLSClientConfig = &tls.Config{}
		}
		it.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // only for hosts the user named insecure
		g.insecureTLS = it
	}
	return g
}

type guardTransport struct {
	secure, insecureTLS http.RoundTripper
	insecure            []string
}

func (g *guardTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if slices.Contains(g.insecure, req.URL.Host) {
		return g.insecureTLS.RoundTrip(req)
	}
	if req.URL.Scheme == "http" && !isLoopback(req.URL.Hostname()) {
		return nil, fmt.Errorf("plain HTTP to %s refused: it is not a loopback host; name it as an insecure registry to allow it", req.URL.Host)
	}
	return g.secure.RoundTrip(req)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
