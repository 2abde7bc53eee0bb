package commit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// CertDirs are the directories holding per-registry certificates, the
// layout docker, podman and skopeo read: for registry HOST[:PORT],
// DIR/HOST[:PORT]/*.crt are CA certificates trusted in addition to the
// system roots (which SSL_CERT_FILE and SSL_CERT_DIR extend), and each
// DIR/HOST[:PORT]/NAME.cert with NAME.key is a client certificate
// presented to the registry. They are /etc/docker/certs.d and
// /etc/containers/certs.d, after, when not root, the user's own:
// $XDG_CONFIG_HOME/containers/certs.d (containers-certs.d(5), default
// ~/.config/containers/certs.d) and ~/.config/docker/certs.d (rootless
// docker's). The first is where an error message says to put a missing
// CA. Tests point it elsewhere; change it before the first registry is
// reached, since each host's files are read once per process.
var CertDirs = defaultCertDirs(os.Geteuid(), os.Getenv("XDG_CONFIG_HOME"), os.Getenv("HOME"))

// actingUID is the user this process finds credentials and certificates
// for (see ActFor).
var actingUID = os.Getuid()

// ActFor tells the package that this process acts for the user uid, not
// for its own ids: a rootless build runs as root in its user namespace,
// for the user who started it. CertDirs become that user's (her
// ~/.config/containers/certs.d first), and podman's auth file is hers
// (/run/containers/UID/auth.json without XDG_RUNTIME_DIR). Call it before
// the first registry is reached.
func ActFor(uid int) {
	actingUID = uid
	CertDirs = defaultCertDirs(uid, os.Getenv("XDG_CONFIG_HOME"), os.Getenv("HOME"))
}

// defaultCertDirs are the certificate directories of a process running
// as euid with the given XDG_CONFIG_HOME and HOME.
func defaultCertDirs(euid int, configHome, home string) []string {
	dirs := []string{"/etc/docker/certs.d", "/etc/containers/certs.d"}
	if euid == 0 || home == "" && configHome == "" {
		return dirs
	}
	if configHome == "" {
		configHome = filepath.Join(home, ".config")
	}
	user := []string{filepath.Join(configHome, "containers", "certs.d")}
	if home != "" {
		user = append(user, filepath.Join(home, ".config", "docker", "certs.d"))
	}
	return append(user, dirs...)
}

// hostCerts is what the certificate directories hold for one registry
// host, and the transports built from it.
type hostCerts struct {
	// consulted says, one line each, where trust for the host came from
	// ("no ca.crt in /etc/docker/certs.d/HOST/ (the directory does not
	// exist)"), for error messages.
	consulted []string
	// secure verifies the registry's certificate; insecure does not (for
	// hosts named insecure). Both present the client certificates.
	secure, insecure http.RoundTripper
	// secureTLS and insecureTLS are their TLS configurations.
	secureTLS, insecureTLS *tls.Config
	err                    error
}

// hostCertsCache holds a *hostCerts per CertDirs and host, built on the
// first request to the host.
var hostCertsCache sync.Map

// certsFor returns the host's certificates and transports, reading the
// certificate directories on first use.
func certsFor(dirs []string, host string) *hostCerts {
	key := strings.Join(append(slices.Clone(dirs), host), "\x00")
	if hc, ok := hostCertsCache.Load(key); ok {
		return hc.(*hostCerts)
	}
	hc, _ := hostCertsCache.LoadOrStore(key, loadHostCerts(dirs, host))
	return hc.(*hostCerts)
}

// loadHostCerts reads DIR/HOST/ of every dir and builds transports that
// trust the CAs found there and present the client certificates.
func loadHostCerts(dirs []string, host string) *hostCerts {
	hc := &hostCerts{consulted: []string{systemRootsNote()}}
	var cas [][]byte
	var certs []tls.Certificate
	var errs []error
	for _, dir := range dirs {
		found, note, err := readCertDir(filepath.Join(dir, host))
		hc.consulted = append(hc.consulted, note)
		if err != nil {
			errs = append(errs, err)
		}
		cas = append(cas, found.cas...)
		certs = append(certs, found.certs...)
	}
	if len(errs) > 0 {
		hc.err = fmt.Errorf("reading the certificates for %s: %w", host, errors.Join(errs...))
		return hc
	}
	base := registryTransport()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: certs}
	if len(cas) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		for _, pem := range cas {
			pool.AppendCertsFromPEM(pem)
		}
		cfg.RootCAs = pool
	}
	hc.secure, hc.secureTLS = base, cfg
	if len(cas) > 0 || len(certs) > 0 {
		hc.secure = withTLS(base, cfg)
	}
	insecure := cfg.Clone()
	insecure.InsecureSkipVerify = true //nolint:gosec // only for hosts the user named insecure
	hc.insecure, hc.insecureTLS = withTLS(base, insecure), insecure
	return hc
}

// responseHeaderTimeout is how long a registry may take to start
// answering a request once it has been sent whole. Without one, a
// registry that accepts the connection and never answers hangs the build
// forever. It is generous: a registry answers the PUT that closes an
// upload only once it has checked (and, on cloud storage, moved) the
// whole blob, and a busy one queues requests; a minute is far beyond
// either, and a build whose base is on a registry that never answers
// fails after that minute. A slow transfer is never cut by it: see
// bodyIdleTimeout.
var responseHeaderTimeout = 60 * time.Second

// registryTransport is ggcr's default transport with
// responseHeaderTimeout.
func registryTransport() *http.Transport {
	base, ok := remote.DefaultTransport.(*http.Transport)
	if !ok {
		base = http.DefaultTransport.(*http.Transport)
	}
	t := base.Clone()
	t.ResponseHeaderTimeout = responseHeaderTimeout
	return t
}

func withTLS(t *http.Transport, cfg *tls.Config) *http.Transport {
	c := t.Clone()
	c.TLSClientConfig = cfg
	return c
}

// systemRootsNote says which system roots Go trusts.
func systemRootsNote() string {
	var set []string
	for _, env := range []string{"SSL_CERT_FILE", "SSL_CERT_DIR"} {
		if v := os.Getenv(env); v != "" {
			set = append(set, env+"="+v)
		}
	}
	if len(set) == 0 {
		return "the system's CA certificates (SSL_CERT_FILE and SSL_CERT_DIR are not set)"
	}
	return "the system's CA certificates and " + strings.Join(set, ", ")
}

// certDir is what one DIR/HOST/ holds.
type certDir struct {
	cas   [][]byte
	certs []tls.Certificate
}

// readCertDir reads one DIR/HOST/ as docker does: *.crt are CAs, NAME.cert
// and NAME.key a client certificate pair (either alone is an error). It
// returns what it found, a note saying so, and the problems found.
func readCertDir(dir string) (certDir, string, error) {
	var found certDir
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return found, fmt.Sprintf("no ca.crt in %s/ (the directory does not exist)", dir), nil
	case err != nil:
		return found, fmt.Sprintf("%s/ is unreadable", dir), err
	}
	var notes, problems []string
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		switch filepath.Ext(e.Name()) {
		case ".crt":
			pem, err := os.ReadFile(p)
			if err == nil && !x509.NewCertPool().AppendCertsFromPEM(pem) {
				err = errors.New("no PEM certificate in it")
			}
			if err != nil {
				problems = append(problems, fmt.Sprintf("CA certificate %s: %v", p, err))
				continue
			}
			found.cas = append(found.cas, pem)
			notes = append(notes, "CA certificate "+p)
		case ".cert":
			key := strings.TrimSuffix(p, ".cert") + ".key"
			c, err := tls.LoadX509KeyPair(p, key)
			if err != nil {
				problems = append(problems, fmt.Sprintf("client certificate %s with key %s: %v", p, key, err))
				continue
			}
			found.certs = append(found.certs, c)
			notes = append(notes, "client certificate "+p)
		case ".key":
			if _, err := os.Stat(strings.TrimSuffix(p, ".key") + ".cert"); err != nil {
				problems = append(problems, fmt.Sprintf("key %s has no client certificate %s (a CA certificate must end in .crt)",
					p, strings.TrimSuffix(e.Name(), ".key")+".cert"))
			}
		}
	}
	if len(problems) > 0 {
		return found, fmt.Sprintf("%s/ has unusable files", dir), errors.New(strings.Join(problems, "; "))
	}
	if len(found.cas) == 0 {
		notes = append([]string{fmt.Sprintf("no ca.crt in %s/ (no *.crt file)", dir)}, notes...)
	}
	return found, strings.Join(notes, ", "), nil
}

// isCertProblem says whether err is a failure to verify the server's
// certificate, or the server's refusal of ours.
func isCertProblem(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || isClientCertAlert(err)
}

// isClientCertAlert says whether the server refused the handshake for
// want of a (good) client certificate: TLS alerts bad_certificate (42) and
// certificate_required (116).
func isClientCertAlert(err error) bool {
	return clientCertAlert(err) != ""
}

// clientCertAlert is the text of the alert by which the server refused
// our (missing) client certificate, or "". crypto/tls returns a
// tls.AlertError only over QUIC; over TCP the alert is an unexported type
// in a *net.OpError "remote error", known by its text.
func clientCertAlert(err error) string {
	var alert tls.AlertError
	if errors.As(err, &alert) && (alert == 42 || alert == 116) {
		return strings.TrimPrefix(alert.Error(), "tls: ")
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" && op.Err != nil {
		switch text := op.Err.Error(); text {
		case "tls: bad certificate", "tls: certificate required":
			return strings.TrimPrefix(text, "tls: ")
		}
	}
	return ""
}

// probeClientCert finds out whether host closed a connection for want of
// a (good) client certificate, when err, the failure of a request to it,
// does not say why: with TLS 1.3 the server refuses the certificate only
// after the client has finished its handshake, and if HTTP/2 was already
// set up on the connection, net/http reports only "http2: client conn
// could not be established". It shakes hands with host again, with cfg,
// and reads: the alert it gets, if a client certificate one, is the
// cause; otherwise err stands.
func probeClientCert(ctx context.Context, host string, cfg *tls.Config, err error) error {
	// net/http's error is unexported; over HTTP/1.1 the alert itself
	// comes back.
	if !strings.Contains(err.Error(), "http2: client conn could not be established") || isCertProblem(err) {
		return err
	}
	addr := host
	if _, _, splitErr := net.SplitHostPort(host); splitErr != nil {
		addr = net.JoinHostPort(host, "443")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, dialErr := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", addr)
	if dialErr != nil {
		if isClientCertAlert(dialErr) {
			return dialErr
		}
		return err
	}
	defer func() { _ = conn.Close() }()
	if deadlineErr := conn.SetReadDeadline(time.Now().Add(2 * time.Second)); deadlineErr != nil {
		return err
	}
	if _, readErr := conn.Read(make([]byte, 1)); isClientCertAlert(readErr) {
		return readErr
	}
	return err
}

// certError is a TLS failure with a registry, and where the trust for it
// was looked for.
type certError struct {
	host      string
	certDir   []string // where the fix puts the CA: the first of them
	consulted []string
	err       error
}

func (e *certError) Unwrap() error { return e.err }

func (e *certError) Error() string {
	var b strings.Builder
	b.WriteString(e.problem())
	for _, c := range e.consulted {
		b.WriteString("\n  consulted: " + c)
	}
	b.WriteString("\n  " + e.fix())
	return b.String()
}

// problem says in plain words what went wrong.
func (e *certError) problem() string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	switch {
	case errors.As(e.err, &unknown):
		issuer := ""
		if unknown.Cert != nil && unknown.Cert.Issuer.CommonName != "" {
			issuer = fmt.Sprintf(" (%q)", unknown.Cert.Issuer.CommonName)
		}
		return fmt.Sprintf("the TLS certificate of registry %s is signed by an unknown authority%s", e.host, issuer)
	case errors.As(e.err, &hostname):
		return fmt.Sprintf("the TLS certificate of registry %s is not valid for that name: %v", e.host, hostname.Error())
	case errors.As(e.err, &invalid):
		return fmt.Sprintf("the TLS certificate of registry %s is not valid: %v", e.host, invalid.Error())
	case isClientCertAlert(e.err):
		return fmt.Sprintf("registry %s refused the TLS connection: %s (it wants a client certificate, or does not accept ours)", e.host, clientCertAlert(e.err))
	}
	return fmt.Sprintf("the TLS certificate of registry %s cannot be verified: %v", e.host, e.err)
}

// fix says how to make the connection work.
func (e *certError) fix() string {
	dir := "/etc/docker/certs.d/" + e.host + "/"
	if len(e.certDir) > 0 {
		dir = filepath.Join(e.certDir[0], e.host) + "/"
	}
	if isClientCertAlert(e.err) {
		return fmt.Sprintf("if the registry wants a client certificate, put it in %sclient.cert with its key in %sclient.key", dir, dir)
	}
	return fmt.Sprintf("put the registry's CA certificate in %sca.crt, or use --insecure-registry %s", dir, e.host)
}
