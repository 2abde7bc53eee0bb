package commit

import (
	"context"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RegistryOptions says how registries are reached. The zero value reads
// credentials from the docker config and trusts the system's roots.
type RegistryOptions struct {
	// Insecure names registries (host[:port]) reached over plain HTTP or
	// with unverified TLS. Loopback hosts may always use plain HTTP.
	Insecure []string
	// Keychain finds registry credentials (nil: one NewKeychain for the
	// process: $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json or
	// ~/.docker/config.json, podman's auth.json, and their credential
	// helpers).
	Keychain authn.Keychain
	// Transport is the HTTP transport to registries (nil: one per
	// registry host that trusts the system roots, which SSL_CERT_FILE and
	// SSL_CERT_DIR extend, plus the CAs of the host's certs.d directories,
	// and presents the client certificates found there; see guard).
	Transport http.RoundTripper
}

// RemoteOptions are the ggcr options that reach a registry as o says.
func RemoteOptions(ctx context.Context, o RegistryOptions) []remote.Option {
	return o.remote(ctx)
}

// ParseTag parses a tag reference, REGISTRY/REPO[:TAG] (":latest" when
// none), for a registry o names insecure allowing plain HTTP.
func ParseTag(s string, o RegistryOptions) (name.Tag, error) {
	t, err := name.NewTag(s)
	if err != nil {
		return name.Tag{}, err
	}
	if opts := o.nameOptions(t.RegistryStr()); opts != nil {
		return name.NewTag(s, opts...)
	}
	return t, nil
}

// ParseReference parses a tag or digest reference as ParseTag does.
func ParseReference(s string, o RegistryOptions) (name.Reference, error) {
	r, err := name.ParseReference(s)
	if err != nil {
		return nil, err
	}
	if opts := o.nameOptions(r.Context().RegistryStr()); opts != nil {
		return name.ParseReference(s, opts...)
	}
	return r, nil
}

// ParseRepository parses a repository, REGISTRY/REPO, as ParseTag does.
func ParseRepository(s string, o RegistryOptions) (name.Repository, error) {
	r, err := name.NewRepository(s)
	if err != nil {
		return name.Repository{}, err
	}
	if opts := o.nameOptions(r.RegistryStr()); opts != nil {
		return name.NewRepository(s, opts...)
	}
	return r, nil
}
