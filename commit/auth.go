package commit

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/credentials"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// defaultKeychain is the keychain of a RegistryOptions without one: for
// the strata command, one process, one build.
var defaultKeychain authn.Keychain = NewKeychain()

// NewKeychain returns a keychain that finds registry credentials where
// docker, podman and skopeo find them (see lookup), and remembers for
// each registry where it looked and what it found, so that a refusal can
// say so (RegistryError).
//
// It looks a registry host up once for its life: a credential helper (a
// cloud CLI, often slow) runs once per host, not once per request, and
// hosts are looked up in parallel. A change to the environment variables
// or files it reads makes it look again. Make one per build.
func NewKeychain() authn.Keychain { return &reportingKeychain{} }

type reportingKeychain struct {
	mu    sync.Mutex
	state *authState
}

// authReports holds the last authReport of each repository ("HOST/REPO")
// and registry host looked up.
var authReports sync.Map

// Resolve implements authn.Keychain.
func (k *reportingKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	cfg, rep := k.current().lookup(target)
	authReports.Store(target.String(), rep)
	authReports.Store(target.RegistryStr(), rep)
	if rep.err != nil {
		return nil, rep.err
	}
	if !rep.found {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(authn.AuthConfig{
		Username:      cfg.Username,
		Password:      cfg.Password,
		Auth:          cfg.Auth,
		IdentityToken: cfg.IdentityToken,
		RegistryToken: cfg.RegistryToken,
	}), nil
}

// current is the state read from the files and environment as they are
// now: the one read before if nothing changed.
func (k *reportingKeychain) current() *authState {
	paths, fingerprint := authFingerprint()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.state == nil || k.state.fingerprint != fingerprint {
		k.state = readAuthState(paths, fingerprint)
	}
	return k.state
}

// authEnv are the environment variables that say where credentials are.
var authEnv = []string{"HOME", "DOCKER_CONFIG", configfile.DockerEnvConfigKey, "REGISTRY_AUTH_FILE",
	"XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "PATH"}

// authFingerprint is where the credentials files are, and a string that
// changes when they or the environment naming them change.
func authFingerprint() (authPaths, string) {
	p := credentialPaths()
	var b strings.Builder
	for _, env := range authEnv {
		fmt.Fprintf(&b, "%s=%s\x00", env, os.Getenv(env))
	}
	for _, f := range p.all() {
		if fi, err := os.Stat(f); err == nil {
			fmt.Fprintf(&b, "%s %d %d %v\x00", f, fi.Size(), fi.ModTime().UnixNano(), fi.Mode())
		}
	}
	return p, b.String()
}

// authPaths are the credentials files that may be read.
type authPaths struct {
	authFile   string   // $REGISTRY_AUTH_FILE
	homeDocker string   // ~/.docker/config.json
	docker     string   // $DOCKER_CONFIG/config.json, else ~/.docker/config.json
	podman     []string // podman's default auth.json files
}

func (p authPaths) all() []string {
	return append([]string{p.authFile, p.homeDocker, p.docker}, p.podman...)
}

func credentialPaths() authPaths {
	home, _ := os.UserHomeDir()
	dockerDir := os.Getenv("DOCKER_CONFIG")
	if dockerDir == "" {
		dockerDir = filepath.Join(home, ".docker")
	}
	p := authPaths{
		authFile:   os.Getenv("REGISTRY_AUTH_FILE"),
		homeDocker: filepath.Join(home, ".docker", "config.json"),
		docker:     filepath.Join(dockerDir, "config.json"),
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		p.podman = append(p.podman, filepath.Join(d, "containers", "auth.json"))
	} else {
		p.podman = append(p.podman, fmt.Sprintf("/run/containers/%d/auth.json", actingUID))
	}
	configDir := os.Getenv("XDG_CONFIG_HOME")
	if configDir == "" && home != "" {
		configDir = filepath.Join(home, ".config")
	}
	if configDir != "" {
		p.podman = append(p.podman, filepath.Join(configDir, "containers", "auth.json"))
	}
	return p
}

// authState is what the credentials files say, read once, and the
// answers of the credential helpers asked so far.
type authState struct {
	fingerprint string
	env         bool        // DOCKER_AUTH_CONFIG is set
	files       []*authFile // the files read, in the order they are consulted
	looked      []string    // files looked for that do not exist
	err         error       // a file could not be read
	helpers     sync.Map    // file, helper and host → *helperAnswer
}

// authFile is one credentials file read.
type authFile struct {
	path    string
	absent  bool // DOCKER_CONFIG names a directory without config.json
	podman  bool // REGISTRY_AUTH_FILE or podman's auth.json, which docker login does not write
	cf      *configfile.ConfigFile
	skipped map[string]error // auths entries whose auth does not decode
}

type helperAnswer struct {
	once sync.Once
	cfg  types.AuthConfig
	err  error
}

// readAuthState reads the credentials files as skopeo and buildah do:
// $REGISTRY_AUTH_FILE first when it is set, then the docker config
// ($DOCKER_CONFIG/config.json, else ~/.docker/config.json); without
// REGISTRY_AUTH_FILE, then podman's auth.json
// ($XDG_RUNTIME_DIR/containers/auth.json, else
// /run/containers/UID/auth.json; then
// $XDG_CONFIG_HOME/containers/auth.json, else
// ~/.config/containers/auth.json), which skopeo reads before the docker
// config (a docker config's entry wins here, as it did for docker's
// users). A podman file after a docker config that the user may not read
// is passed over; one that does not parse is an error, as for skopeo.
func readAuthState(p authPaths, fingerprint string) *authState {
	st := &authState{fingerprint: fingerprint, env: os.Getenv(configfile.DockerEnvConfigKey) != ""}
	var paths []string
	if p.authFile != "" {
		paths = append(paths, p.authFile)
	}
	dockerAbsent := false
	optional := map[string]bool{} // read if it can be: podman's, after a docker config
	switch {
	case isFile(p.docker):
		paths = append(paths, p.docker)
		if p.authFile == "" {
			// As skopeo reads them (before the docker config there):
			// a podman login is found where docker's config has no
			// entry.
			for _, f := range p.podman {
				paths, optional[f] = append(paths, f), true
			}
		}
	case isFile(p.homeDocker):
		// authn.DefaultKeychain's choice: a DOCKER_CONFIG without
		// config.json beside an existing ~/.docker/config.json.
		dockerAbsent = true
	case p.authFile != "":
		st.looked = append(st.looked, p.docker)
	default:
		paths = append(paths, p.podman...)
		st.looked = append(st.looked, p.docker)
	}
	for _, file := range paths {
		f, err := readAuthFile(file)
		switch {
		case errors.Is(err, fs.ErrNotExist), optional[file] && errors.Is(err, fs.ErrPermission):
			st.looked = append(st.looked, file)
		case err != nil:
			st.err = err
			return st
		default:
			f.podman = file != p.docker
			st.files = append(st.files, f)
		}
	}
	if dockerAbsent {
		st.files = append(st.files, &authFile{path: p.docker, absent: true, cf: configfile.New(p.docker)})
	}
	return st
}

// readAuthFile reads a docker config or podman auth.json as docker-cli
// does, except that an auths entry whose auth does not decode is set
// aside (skipped), not an error for every registry: docker ignores such
// a file with a warning, skopeo the entry.
func readAuthFile(file string) (*authFile, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("reading registry credentials: %w", err)
	}
	f := &authFile{path: file, cf: configfile.New(file), skipped: map[string]error{}}
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(f.cf); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading registry credentials from %s: %w", file, err)
	}
	auths := f.cf.GetAuthConfigs()
	for addr, ac := range auths {
		if ac.Auth != "" {
			if ac.Username, ac.Password, err = decodeAuth(ac.Auth); err != nil {
				f.skipped[addr] = err
				delete(auths, addr)
				continue
			}
		}
		ac.Auth, ac.ServerAddress = "", addr
		auths[addr] = ac
	}
	return f, nil
}

// decodeAuth decodes an auths entry's auth, base64 of USER:PASSWORD, as
// docker-cli does.
func decodeAuth(auth string) (user, password string, err error) {
	decoded, err := base64.StdEncoding.DecodeString(auth)
	if err != nil {
		return "", "", fmt.Errorf("its \"auth\" is not base64: %w", err)
	}
	user, password, ok := strings.Cut(string(decoded), ":")
	if !ok || user == "" {
		return "", "", errors.New(`its "auth" is not the base64 of USER:PASSWORD`)
	}
	return user, strings.Trim(password, "\x00"), nil
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir()
}

// authReport says where the credentials for a registry were looked for
// and what was found.
type authReport struct {
	host   string
	files  []string // the credentials files read, in order
	env    bool     // DOCKER_AUTH_CONFIG is set
	looked []string // the files looked for that do not exist
	absent string   // a docker config named by DOCKER_CONFIG that does not exist
	// Where the credentials came from, when found; what was asked last
	// otherwise.
	fromEnv bool   // DOCKER_AUTH_CONFIG
	podman  bool   // the file is REGISTRY_AUTH_FILE or podman's auth.json
	file    string // the file
	entry   string // the key of the file's auths entry
	helper  string // the credential helper asked (its suffix: "pass" for docker-credential-pass)
	by      string // where the helper was configured: "credHelpers" or "credsStore"
	found   bool   // credentials were found
	// others are the auths entries of the host scoped to other
	// repositories; skipped those whose auth does not decode.
	others, skipped []string
	err             error // a file or the helper could not be read
}

// lookup finds the credentials for target: the entry of
// DOCKER_AUTH_CONFIG for its registry, then, in each file in turn, the
// answer of the credential helper configured for the registry
// (credHelpers, else credsStore), asked for the registry host only as
// docker asks, or without one the auths entry that names the most
// specific namespace of the repository (podman's "HOST/NS" keys), else
// the registry.
func (st *authState) lookup(target authn.Resource) (types.AuthConfig, authReport) {
	host := target.RegistryStr()
	key := host
	if key == name.DefaultRegistry {
		key = authn.DefaultAuthKey
	}
	repo := strings.TrimPrefix(strings.TrimPrefix(target.String(), host), "/")
	rep := authReport{host: host, env: st.env, looked: st.looked, err: st.err}
	if st.err != nil {
		return types.AuthConfig{}, rep
	}
	if st.env {
		// DOCKER_AUTH_CONFIG alone (an empty config has no file entry).
		if cfg, err := configfile.New("").GetAuthConfig(key); err == nil && hasCredentials(cfg) {
			rep.found, rep.fromEnv = true, true
			return cfg, rep
		}
	}
	for _, f := range st.files {
		rep.file, rep.podman, rep.helper, rep.by, rep.entry = f.path, f.podman, "", "", ""
		if f.absent {
			rep.absent = f.path
			continue
		}
		rep.files = append(rep.files, f.path)
		if helper, by := credentialHelper(f.cf, key); helper != "" {
			rep.helper, rep.by = helper, by
			cfg, err := st.askHelper(f, helper, key)
			if err != nil {
				rep.err = fmt.Errorf("asking credential helper docker-credential-%s (%s in %s) for %s: %w", helper, by, f.path, key, err)
				return types.AuthConfig{}, rep
			}
			if hasCredentials(cfg) {
				rep.found = true
				return cfg, rep
			}
			continue
		}
		entry, others := pickEntry(f, key, repo)
		if err, bad := f.skipped[entry]; bad {
			rep.err = fmt.Errorf("reading registry credentials from %s: auths entry %q: %w; correct it, or log in again with: docker login %s", f.path, entry, err, host)
			return types.AuthConfig{}, rep
		}
		rep.others = append(rep.others, others...)
		for k := range f.skipped {
			rep.skipped = append(rep.skipped, fmt.Sprintf("%q in %s", k, f.path))
		}
		if cfg := f.cf.GetAuthConfigs()[entry]; entry != "" && hasCredentials(cfg) {
			cfg.ServerAddress = ""
			rep.found, rep.entry = true, entry
			return cfg, rep
		}
	}
	slices.Sort(rep.skipped)
	return types.AuthConfig{}, rep
}

func hasCredentials(cfg types.AuthConfig) bool {
	cfg.ServerAddress = ""
	return cfg != (types.AuthConfig{})
}

// askHelper is helper's answer for key, asked once per file and host.
func (st *authState) askHelper(f *authFile, helper, key string) (types.AuthConfig, error) {
	v, _ := st.helpers.LoadOrStore(f.path+"\x00"+helper+"\x00"+key, &helperAnswer{})
	a := v.(*helperAnswer)
	a.once.Do(func() {
		a.cfg, a.err = f.cf.GetAuthConfig(key)
		a.cfg.ServerAddress = ""
	})
	return a.cfg, a.err
}

// pickEntry is the key of f's auths entry (or of an entry skipped as
// unreadable) for repository repo of registry key, as containers/image
// chooses it: "KEY/REPO", then each shorter namespace of it, then KEY;
// then a key naming KEY with a scheme or an API path
// ("https://KEY/v1/"), the first in sorted order. others are the keys
// scoped to other repositories of the registry. "" if none.
func pickEntry(f *authFile, key, repo string) (entry string, others []string) {
	has := func(k string) bool {
		_, ok := f.cf.GetAuthConfigs()[k]
		_, bad := f.skipped[k]
		return ok || bad
	}
	hosts := []string{key}
	if key == authn.DefaultAuthKey {
		hosts = []string{name.DefaultRegistry, "docker.io"}
	}
	for ns := repo; ns != "" && ns != "." && ns != "/"; ns = path.Dir(ns) {
		for _, p := range hosts {
			if has(p + "/" + ns) {
				return p + "/" + ns, nil
			}
		}
	}
	if has(key) {
		return key, nil
	}
	var keys []string
	for k := range f.cf.GetAuthConfigs() {
		keys = append(keys, k)
	}
	for k := range f.skipped {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(hosts, credentials.ConvertToHostname(k)) {
			continue
		}
		if hostScoped(k) {
			return k, nil
		}
		others = append(others, k)
	}
	return "", others
}

// hostScoped reports whether auths key k names a whole registry: HOST,
// or a URL or an API path (docker's legacy "https://HOST/v1/"), rather
// than a namespace of it (podman's "HOST/NS").
func hostScoped(k string) bool {
	if strings.Contains(k, "://") {
		return true
	}
	_, p, _ := strings.Cut(k, "/")
	switch strings.TrimSuffix(p, "/") {
	case "", "v1", "v2":
		return true
	}
	return false
}

// credentialHelper is the helper docker-cli asks for key's credentials:
// the registry's credHelpers entry, else credsStore.
func credentialHelper(cf *configfile.ConfigFile, key string) (helper, by string) {
	if h, ok := cf.CredentialHelpers[key]; ok && h != "" {
		return h, "credHelpers"
	}
	if cf.CredentialsStore != "" {
		return cf.CredentialsStore, "credsStore"
	}
	return "", ""
}

// authReportFor is the recorded report for repository r (nil: any) of
// host, or a fresh lookup.
func authReportFor(host string, r name.Reference) authReport {
	if r != nil {
		if rep, ok := authReports.Load(r.Context().String()); ok {
			return rep.(authReport)
		}
	}
	if rep, ok := authReports.Load(host); ok {
		return rep.(authReport)
	}
	var target authn.Resource
	target, err := name.NewRegistry(host)
	if err != nil {
		return authReport{host: host}
	}
	if r != nil {
		target = r.Context()
	}
	kc, ok := defaultKeychain.(*reportingKeychain)
	if !ok {
		return authReport{host: host}
	}
	_, rep := kc.current().lookup(target)
	return rep
}

// source says where the credentials that were sent came from.
func (r authReport) source() string {
	switch {
	case r.fromEnv:
		return "in DOCKER_AUTH_CONFIG"
	case r.helper != "":
		return fmt.Sprintf("from credential helper docker-credential-%s (%s in %s)", r.helper, r.by, r.file)
	}
	return fmt.Sprintf("in %s (auths entry %q)", r.file, r.entry)
}

// missing says where credentials were looked for and not found.
func (r authReport) missing() string {
	var msg string
	switch {
	case len(r.files) == 0 && r.absent != "":
		msg = fmt.Sprintf("no credentials for %s: %s does not exist", r.host, r.absent)
	case len(r.files) == 0 && r.env:
		msg = fmt.Sprintf("no credentials for %s in DOCKER_AUTH_CONFIG, and there is no docker config file (looked for %s)", r.host, strings.Join(r.looked, ", "))
	case len(r.files) == 0:
		msg = fmt.Sprintf("no credentials for %s: there is no docker config file (looked for %s)", r.host, strings.Join(r.looked, ", "))
	case r.helper != "" && len(r.files) == 1:
		msg = fmt.Sprintf("no credentials for %s from credential helper docker-credential-%s (%s in %s)", r.host, r.helper, r.by, r.file)
	default:
		msg = fmt.Sprintf("no credentials for %s in %s", r.host, strings.Join(r.files, " nor in "))
	}
	var notes []string
	if len(r.others) > 0 {
		notes = append(notes, fmt.Sprintf("its auths entries %s are for other repositories", quoteAll(r.others)))
	}
	if len(r.skipped) > 0 {
		notes = append(notes, "skipped as unreadable: auths entries "+strings.Join(r.skipped, ", "))
	}
	if len(notes) > 0 {
		msg += " (" + strings.Join(notes, "; ") + ")"
	}
	return msg
}

func quoteAll(keys []string) string {
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = fmt.Sprintf("%q", k)
	}
	return strings.Join(q, ", ")
}
