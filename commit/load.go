package commit

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// defaultDockerHost is where dockerd listens unless DOCKER_HOST or a
// docker context says otherwise.
const defaultDockerHost = "unix:///var/run/docker.sock"

// Load streams img, named by tags, into the docker daemon the docker CLI
// would talk to (see dockerEndpoint: DOCKER_HOST, else the current docker
// context; unix:// or tcp://, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH
// honoured) as `docker load` would. Errors the daemon reports in its load
// progress are returned.
//
// ggcr's pkg/v1/daemon is not used: it pulls in the moby client and its
// dependencies, and it ignores errors reported in the load response.
func Load(ctx context.Context, img v1.Image, tags []string) error {
	refs, err := archiveRefs(ctxImage(ctx, img), tags)
	if err != nil {
		return err
	}
	ep, err := dockerEndpoint()
	if err != nil {
		return err
	}
	host := ep.Host
	client, base, err := dockerClient(ep)
	if err != nil {
		return fmt.Errorf("loading into docker at %s: %w", host, err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarball.MultiRefWrite(refs, pw)) }()
	defer pr.Close()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/images/load?quiet=1", pr)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("loading into docker at %s: %w", host, err)
	}
	defer resp.Body.Close()
	if err := loadResult(resp); err != nil {
		return fmt.Errorf("loading into docker at %s: %w", host, err)
	}
	return nil
}

// loadResult reads the daemon's answer to /images/load: an HTTP error, or a
// stream of JSON messages any of which may carry an error.
func loadResult(resp *http.Response) error {
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var m struct{ Message string }
		if json.Unmarshal(body, &m) == nil && m.Message != "" {
			return fmt.Errorf("%s: %s", resp.Status, m.Message)
		}
		return fmt.Errorf("%s: %s", resp.Status, body)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var m struct {
			Error       string
			ErrorDetail *struct{ Message string }
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading load response: %w", err)
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}

// CheckDaemon returns an error unless the docker daemon Load would load
// into answers a ping: call it before a build that ends with --load, so
// that a daemon that is not there is found before any step runs. It
// gives up after pingTimeout, or when ctx ends (a ^C).
func CheckDaemon(ctx context.Context) error {
	ep, err := dockerEndpoint()
	if err != nil {
		return err
	}
	client, base, err := dockerClient(ep)
	if err != nil {
		return fmt.Errorf("docker at %s (%s): %w", ep.Host, ep.From, err)
	}
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/_ping", nil)
	if err != nil {
		return fmt.Errorf("docker at %s (%s): %w", ep.Host, ep.From, err)
	}
	resp, err := client.Do(req)
	if uerr := (*url.Error)(nil); errors.As(err, &uerr) {
		err = uerr.Err // not the made-up URL of a unix socket
	}
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("may not use the docker daemon at %s (%s): %w; run strata as a user of the socket's group (usually docker) or as root, or point DOCKER_HOST or DOCKER_CONTEXT at another daemon", ep.Host, ep.From, err)
	}
	if err != nil {
		return fmt.Errorf("no docker daemon answers at %s (%s): %w; start it, or point DOCKER_HOST or DOCKER_CONTEXT at one", ep.Host, ep.From, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("the docker daemon at %s (%s) answers its ping with %s: %s", ep.Host, ep.From, resp.Status, body)
	}
	return nil
}

// pingTimeout bounds CheckDaemon.
const pingTimeout = 10 * time.Second

// endpoint is where a docker daemon listens, as the docker CLI finds it.
type endpoint struct {
	Host string // unix:///var/run/docker.sock, tcp://host:2376
	From string // what named it: "DOCKER_HOST", "docker context NAME", "the default"
	// TLSDir holds a context's ca.pem, cert.pem and key.pem; "" for
	// none (DOCKER_TLS_VERIFY and DOCKER_CERT_PATH then apply).
	TLSDir string
	// SkipTLSVerify is a context's skip of the server's certificate check.
	SkipTLSVerify bool
}

// dockerEndpoint finds the daemon as the docker CLI does: DOCKER_HOST;
// else the context DOCKER_CONTEXT names, else the config's
// currentContext (config.json in DOCKER_CONFIG, default ~/.docker); a
// context other than "default" is read from
// contexts/meta/SHA256(NAME)/meta.json beside it. Else the default socket.
func dockerEndpoint() (endpoint, error) {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return endpoint{Host: h, From: "DOCKER_HOST"}, nil
	}
	dir, err := dockerConfigDir()
	if err != nil {
		return endpoint{}, err
	}
	name := os.Getenv("DOCKER_CONTEXT")
	if name == "" {
		var cfg struct{ CurrentContext string }
		data, err := os.ReadFile(filepath.Join(dir, "config.json"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return endpoint{}, fmt.Errorf("reading the docker config: %w", err)
		}
		if len(data) > 0 {
			if err := json.Unmarshal(data, &cfg); err != nil {
				return endpoint{}, fmt.Errorf("reading the docker config %s: %w", filepath.Join(dir, "config.json"), err)
			}
		}
		name = cfg.CurrentContext
	}
	if name == "" || name == "default" {
		return endpoint{Host: defaultDockerHost, From: "the default"}, nil
	}
	return contextEndpoint(dir, name)
}

// contextEndpoint reads the docker endpoint of the context name from the
// docker config dir.
func contextEndpoint(dir, name string) (endpoint, error) {
	id := fmt.Sprintf("%x", sha256.Sum256([]byte(name)))
	meta := filepath.Join(dir, "contexts", "meta", id, "meta.json")
	data, err := os.ReadFile(meta)
	if errors.Is(err, fs.ErrNotExist) {
		return endpoint{}, fmt.Errorf("docker context %q not found (no %s); see docker context ls", name, meta)
	}
	if err != nil {
		return endpoint{}, fmt.Errorf("reading docker context %q: %w", name, err)
	}
	var m struct {
		Endpoints map[string]struct {
			Host          string
			SkipTLSVerify bool
		}
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return endpoint{}, fmt.Errorf("reading docker context %q from %s: %w", name, meta, err)
	}
	d, ok := m.Endpoints["docker"]
	if !ok || d.Host == "" {
		return endpoint{}, fmt.Errorf("docker context %q has no docker endpoint (%s)", name, meta)
	}
	ep := endpoint{Host: d.Host, From: fmt.Sprintf("docker context %q", name), SkipTLSVerify: d.SkipTLSVerify}
	if tls := filepath.Join(dir, "contexts", "tls", id, "docker"); dirExists(tls) {
		ep.TLSDir = tls
	}
	return ep, nil
}

// dockerConfigDir is the docker CLI's config dir: DOCKER_CONFIG, else
// ~/.docker.
func dockerConfigDir() (string, error) {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the docker config: %w", err)
	}
	return filepath.Join(home, ".docker"), nil
}

func dirExists(dir string) bool {
	fi, err := os.Stat(dir)
	return err == nil && fi.IsDir()
}

// dockerClient returns an HTTP client for the daemon at ep and the base
// URL to put API paths under.
func dockerClient(ep endpoint) (*http.Client, string, error) {
	host := ep.Host
	u, err := url.Parse(host)
	if err != nil {
		return nil, "", fmt.Errorf("parsing %s: %w", ep.From, err)
	}
	switch u.Scheme {
	case "unix":
		sock := u.Path
		t := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}
		return &http.Client{Transport: t}, "http://docker", nil
	case "tcp":
		// As the docker CLI: TLS with a context's TLS data or its skip of
		// the check, or DOCKER_TLS_VERIFY; a host without a port is on
		// 2376 with TLS, 2375 without.
		useTLS := ep.TLSDir != "" || ep.SkipTLSVerify || os.Getenv("DOCKER_TLS_VERIFY") != ""
		hostPort := u.Host
		if u.Port() == "" {
			port := "2375"
			if useTLS {
				port = "2376"
			}
			hostPort = net.JoinHostPort(u.Hostname(), port)
		}
		if !useTLS {
			return &http.Client{}, "http://" + hostPort, nil
		}
		cfg, err := dockerTLS(ep.TLSDir)
		if err != nil {
			return nil, "", err
		}
		cfg.InsecureSkipVerify = ep.SkipTLSVerify // as the context asks
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}, "https://" + hostPort, nil
	}
	return nil, "", fmt.Errorf("%s %q: only unix:// and tcp:// are supported", ep.From, host)
}

// dockerTLS reads ca.pem, cert.pem and key.pem from dir, a context's TLS
// dir, else DOCKER_CERT_PATH (default ~/.docker), as the docker CLI does:
// each only if it is there (a CA alone is common; none with a context
// that skips the check).
func dockerTLS(dir string) (*tls.Config, error) {
	if dir == "" {
		dir = os.Getenv("DOCKER_CERT_PATH")
	}
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, err
		}
		dir = filepath.Join(home, ".docker")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	switch ca, err := os.ReadFile(filepath.Join(dir, "ca.pem")); {
	case err == nil:
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("no certificate in %s", filepath.Join(dir, "ca.pem"))
		}
		cfg.RootCAs = pool
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if _, err := os.Stat(certFile); err == nil {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
