package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RegistryPath is the distribution registry binary (Debian package
// docker-registry).
const RegistryPath = "/usr/bin/docker-registry"

// RegistryOptions says how StartRegistry serves.
type RegistryOptions struct {
	// TLS serves HTTPS with a certificate for 127.0.0.1 and localhost
	// signed by a CA made for this registry (Registry.CAFile).
	TLS bool
	// Auth requires HTTP basic auth (htpasswd, bcrypt) as Registry.User
	// and Registry.Password.
	Auth bool
	// ClientCert (with TLS) requires a client certificate signed by a
	// client CA made for this registry (Registry.ClientCert and
	// Registry.ClientKey).
	ClientCert bool
}

// Registry is a running distribution registry.
type Registry struct {
	// Addr is 127.0.0.1:PORT, what image references name.
	Addr string
	// Host is localhost:PORT, the same registry by DNS name (the TLS
	// certificate covers both).
	Host string
	// CAFile is the PEM CA certificate that signed the registry's
	// certificate (TLS only).
	CAFile string
	// CertDir holds ca.crt, a copy of CAFile, as skopeo --cert-dir and
	// docker's certs.d expect (TLS only).
	CertDir string
	// DockerConfig is a directory holding config.json with the
	// credentials for Addr and Host, for DOCKER_CONFIG or skopeo
	// --authfile DockerConfig/config.json (Auth only).
	DockerConfig string
	// User and Password are the credentials (Auth only).
	User, Password string
	// LogPath is the registry's log, one access-log line per request.
	LogPath string
	// ClientCert and ClientKey are the PEM client certificate and key the
	// registry accepts (ClientCert only).
	ClientCert, ClientKey string
}

// StartRegistry runs the distribution registry on a free port of
// 127.0.0.1 with storage in a temp dir, waits until it answers, and stops
// it when the test ends. Skips (or fails under STRATA_REQUIRE_PRIVILEGED=1)
// if the binary is missing.
func StartRegistry(t testing.TB, opts RegistryOptions) *Registry {
	t.Helper()
	Require(t, "docker-registry", func() error { _, err := os.Stat(RegistryPath); return err },
		"apt-get install -y docker-registry")
	dir := t.TempDir()
	port, err := freePort()
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	r := &Registry{
		Addr:    "127.0.0.1:" + strconv.Itoa(port),
		Host:    "localhost:" + strconv.Itoa(port),
		LogPath: filepath.Join(dir, "registry.log"),
	}
	cfg := registryConfig{storage: filepath.Join(dir, "storage"), addr: r.Addr}
	if opts.TLS {
		certFile, keyFile, err := r.makeCerts(dir)
		if err != nil {
			t.Fatalf("making registry certificates: %v", err)
		}
		cfg.cert, cfg.key = certFile, keyFile
		if opts.ClientCert {
			if cfg.clientCA, err = r.makeClientCert(dir); err != nil {
				t.Fatalf("making a client certificate: %v", err)
			}
		}
	}
	if opts.Auth {
		if cfg.htpasswd, err = r.makeAuth(dir); err != nil {
			t.Fatalf("making registry credentials: %v", err)
		}
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, cfg.yaml(), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(r.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(RegistryPath, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting registry: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		t.Logf("registry stopped: %v", <-exited)
	})
	if err := r.waitReady(opts.TLS, exited); err != nil {
		logText, _ := os.ReadFile(r.LogPath)
		t.Fatalf("registry on %s: %v\n%s", r.Addr, err, logText)
	}
	return r
}

// TLSConfig trusts the registry's CA and presents the client certificate
// if the registry wants one (nil without TLS).
func (r *Registry) TLSConfig() *tls.Config {
	if r.CAFile == "" {
		return nil
	}
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(r.CAFile)
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		panic(fmt.Sprintf("reading CA %s: %v", r.CAFile, err))
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if r.ClientCert != "" {
		c, err := tls.LoadX509KeyPair(r.ClientCert, r.ClientKey)
		if err != nil {
			panic(fmt.Sprintf("reading client certificate %s: %v", r.ClientCert, err))
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg
}

// Transport is an HTTP transport that trusts the registry's CA.
func (r *Registry) Transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = r.TLSConfig()
	return t
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls /v2/ until the registry answers (200, or 401 with auth).
func (r *Registry) waitReady(useTLS bool, exited <-chan error) error {
	scheme := "http"
	client := &http.Client{Timeout: time.Second}
	if useTLS {
		scheme = "https"
		client.Transport = r.Transport()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get(scheme + "://" + r.Addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = errors.New(resp.Status)
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("exited: %w", werr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after 10s: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// makeCerts writes a CA and a server certificate for 127.0.0.1 and
// localhost signed by it, and sets CAFile and CertDir.
func (r *Registry) makeCerts(dir string) (certFile, keyFile string, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "strata test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return "", "", err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return "", "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	r.CAFile = filepath.Join(dir, "ca.pem")
	r.CertDir = filepath.Join(dir, "certs")
	certFile = filepath.Join(dir, "server.pem")
	keyFile = filepath.Join(dir, "server-key.pem")
	if err := os.Mkdir(r.CertDir, 0o755); err != nil {
		return "", "", err
	}
	for path, b := range map[string][]byte{
		r.CAFile:                           caPEM,
		filepath.Join(r.CertDir, "ca.crt"): caPEM,
		certFile:                           pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyFile:                            pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return "", "", err
		}
	}
	return certFile, keyFile, nil
}

// makeClientCert writes a client CA and a client certificate signed by
// it, sets ClientCert and ClientKey, and returns the CA's file.
func (r *Registry) makeClientCert(dir string) (string, error) {
	caKey, caCert, caPEM, err := newCA("strata test client CA")
	if err != nil {
		return "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3),
		Subject:      pkix.Name{CommonName: "strata test client"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return "", err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", err
	}
	caFile := filepath.Join(dir, "client-ca.pem")
	r.ClientCert = filepath.Join(dir, "client.cert")
	r.ClientKey = filepath.Join(dir, "client.key")
	for path, b := range map[string][]byte{
		caFile:       caPEM,
		r.ClientCert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		r.ClientKey:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return "", err
		}
	}
	return caFile, nil
}

// newCA makes a self-signed CA certificate.
func newCA(cn string) (*ecdsa.PrivateKey, *x509.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	return key, cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// WriteCertsD writes, under dir, the layout docker's certs.d has for this
// registry: dir/127.0.0.1:PORT/ca.crt, and client.cert with client.key
// when the registry wants a client certificate. It returns the host dir.
func (r *Registry) WriteCertsD(t testing.TB, dir string) string {
	t.Helper()
	hostDir := filepath.Join(dir, r.Addr)
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"ca.crt": r.CAFile}
	if r.ClientCert != "" {
		files["client.cert"], files["client.key"] = r.ClientCert, r.ClientKey
	}
	for name, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(hostDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return hostDir
}

// makeAuth writes an htpasswd file (bcrypt, via the htpasswd tool of
// apache2-utils) and a docker config.json with the same credentials, and
// sets User, Password and DockerConfig.
func (r *Registry) makeAuth(dir string) (string, error) {
	r.User = "strata"
	pw := make([]byte, 12)
	if _, err := rand.Read(pw); err != nil {
		return "", err
	}
	r.Password = base64.RawURLEncoding.EncodeToString(pw)
	out, err := exec.Command("htpasswd", "-Bbn", r.User, r.Password).Output()
	if err != nil {
		return "", fmt.Errorf("htpasswd (apt-get install -y apache2-utils): %w", err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, out, 0o600); err != nil {
		return "", err
	}
	auth := base64.StdEncoding.EncodeToString([]byte(r.User + ":" + r.Password))
	type entry struct {
		Auth string `json:"auth"`
	}
	cfg, err := json.Marshal(map[string]map[string]entry{"auths": {r.Addr: {auth}, r.Host: {auth}}})
	if err != nil {
		return "", err
	}
	r.DockerConfig = filepath.Join(dir, "docker")
	if err := os.Mkdir(r.DockerConfig, 0o700); err != nil {
		return "", err
	}
	return htpasswd, os.WriteFile(filepath.Join(r.DockerConfig, "config.json"), cfg, 0o600)
}

type registryConfig struct {
	storage, addr, cert, key, htpasswd string
	clientCA                           string
}

// yaml is the registry's config file. JSON is valid YAML, so the strings
// are quoted with strconv.Quote.
func (c registryConfig) yaml() []byte {
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n")
	fmt.Fprintf(&b, "storage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\n", q(c.storage))
	fmt.Fprintf(&b, "http:\n  addr: %s\n  secret: strata-test\n", q(c.addr))
	if c.cert != "" {
		fmt.Fprintf(&b, "  tls:\n    certificate: %s\n    key: %s\n", q(c.cert), q(c.key))
		if c.clientCA != "" {
			fmt.Fprintf(&b, "    clientcas:\n      - %s\n", q(c.clientCA))
		}
	}
	if c.htpasswd != "" {
		fmt.Fprintf(&b, "auth:\n  htpasswd:\n    realm: strata-test\n    path: %s\n", q(c.htpasswd))
	}
	return []byte(b.String())
}
