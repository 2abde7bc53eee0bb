package commit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// defaultDockerHost is where dockerd listens unless DOCKER_HOST says
// otherwise.
const defaultDockerHost = "unix:///var/run/docker.sock"

// Load streams img, named by tags, into the docker daemon at DOCKER_HOST
// (unix:// or tcp://; DOCKER_TLS_VERIFY and DOCKER_CERT_PATH are honoured)
// as `docker load` would. Errors the daemon reports in its load progress
// are returned.
//
// ggcr's pkg/v1/daemon is not used: it pulls in the moby client and its
// dependencies, and it ignores errors reported in the load response.
func Load(ctx context.Context, img v1.Image, tags []string) error {
	refs, err := archiveRefs(ctxImage(ctx, img), tags)
	if err != nil {
		return err
	}
	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		host = defaultDockerHost
	}
	client, base, err := dockerClient(host)
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

// dockerClient returns an HTTP client for the daemon at host and the base
// URL to put API paths under.
func dockerClient(host string) (*http.Client, string, error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, "", fmt.Errorf("parsing DOCKER_HOST: %w", err)
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
		if os.Getenv("DOCKER_TLS_VERIFY") == "" {
			return &http.Client{}, "http://" + u.Host, nil
		}
		cfg, err := dockerTLS()
		if err != nil {
			return nil, "", err
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}, "https://" + u.Host, nil
	}
	return nil, "", fmt.Errorf("DOCKER_HOST %q: only unix:// and tcp:// are supported", host)
}

// dockerTLS reads ca.pem, cert.pem and key.pem from DOCKER_CERT_PATH
// (default ~/.docker), as the docker CLI does.
func dockerTLS() (*tls.Config, error) {
	dir := os.Getenv("DOCKER_CERT_PATH")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, err
		}
		dir = filepath.Join(home, ".docker")
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("no certificate in %s", filepath.Join(dir, "ca.pem"))
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
