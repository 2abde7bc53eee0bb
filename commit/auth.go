package commit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/credentials"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// defaultKeychain finds registry credentials where authn.DefaultKeychain
// does, the same way, and remembers for each registry where it looked and
// what it found, so that a refusal can say so (RegistryError).
var defaultKeychain authn.Keychain = &reportingKeychain{}

type reportingKeychain struct{ mu sync.Mutex }

// authReports holds the last authReport of each registry host.
var authReports sync.Map

// Resolve implements authn.Keychain.
func (k *reportingKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	cfg, rep := lookupAuth(target)
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

// authReport says where the credentials for a registry were looked for
// and what was found.
type authReport struct {
	host   string
	file   string   // the config file read ("" if none was found)
	absent bool     // file does not exist (DOCKER_CONFIG names a dir without one)
	env    bool     // DOCKER_AUTH_CONFIG is set
	looked []string // the files looked for, when none was found
	entry  string   // the key of the file's auths entry that matched
	helper string   // the credential helper asked (its suffix: "pass" for docker-credential-pass)
	by     string   // where the helper was configured: "credHelpers" or "credsStore"
	found  bool     // credentials were found
	err    error    // the file or the helper could not be read
}

// lookupAuth finds the credentials for target as authn.DefaultKeychain
// does: the docker config ($DOCKER_CONFIG/config.json, else
// ~/.docker/config.json), else podman's auth.json ($REGISTRY_AUTH_FILE,
// $XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json);
// in it the entry for the repository, else for the registry, through the
// credential helper configured for the registry if there is one; the
// entries of DOCKER_AUTH_CONFIG come before those of any file, and count
// without one.
func lookupAuth(target authn.Resource) (types.AuthConfig, authReport) {
	rep := authReport{host: target.RegistryStr(), env: os.Getenv(configfile.DockerEnvConfigKey) != ""}
	rep.file, rep.looked = authFile()
	if rep.file == "" && !rep.env {
		return types.AuthConfig{}, rep
	}
	// docker-cli's lookups consult DOCKER_AUTH_CONFIG first, with or
	// without a config file: without one, through an empty config.
	cf := configfile.New(rep.file)
	var (
		f   *os.File
		err error
	)
	if rep.file != "" {
		f, err = os.Open(rep.file)
	}
	switch {
	case rep.file == "":
	case errors.Is(err, fs.ErrNotExist):
		rep.absent = true
	case err != nil:
		rep.err = fmt.Errorf("reading registry credentials: %w", err)
		return types.AuthConfig{}, rep
	default:
		err = cf.LoadFromReader(f)
		f.Close()
		if err != nil {
			rep.err = fmt.Errorf("reading registry credentials from %s: %w", rep.file, err)
			return types.AuthConfig{}, rep
		}
	}
	for _, key := range []string{target.String(), target.RegistryStr()} {
		if key == name.DefaultRegistry {
			key = authn.DefaultAuthKey
		}
		rep.helper, rep.by = credentialHelper(cf, key)
		if key == target.String() && rep.by == "credsStore" && hasHelper(cf, target.RegistryStr()) {
			// docker asks only the registry's credHelpers entry; a
			// credsStore, maybe not even installed, has no say.
			continue
		}
		cfg, err := cf.GetAuthConfig(key)
		if err != nil {
			rep.err = fmt.Errorf("asking credential helper docker-credential-%s (%s in %s) for %s: %w", rep.helper, rep.by, rep.file, key, err)
			return types.AuthConfig{}, rep
		}
		cfg.ServerAddress = ""
		if cfg != (types.AuthConfig{}) {
			rep.found, rep.entry = true, authEntry(cf, key)
			return cfg, rep
		}
	}
	rep.helper, rep.by = credentialHelper(cf, target.RegistryStr())
	return types.AuthConfig{}, rep
}

// authFile is the credentials file authn.DefaultKeychain reads, or "" and
// the files it looked for.
func authFile() (string, []string) {
	home, _ := os.UserHomeDir()
	dockerDir := os.Getenv("DOCKER_CONFIG")
	if dockerDir == "" {
		dockerDir = filepath.Join(home, ".docker")
	}
	dockerFile := filepath.Join(dockerDir, "config.json")
	if isFile(filepath.Join(home, ".docker", "config.json")) || isFile(dockerFile) {
		return dockerFile, nil
	}
	looked := []string{dockerFile}
	if f := os.Getenv("REGISTRY_AUTH_FILE"); f != "" {
		if isFile(f) {
			return f, nil
		}
		looked = append(looked, f)
	}
	var podman []string
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		podman = append(podman, filepath.Join(d, "containers", "auth.json"))
	}
	configDir := os.Getenv("XDG_CONFIG_HOME")
	if configDir == "" && home != "" {
		configDir = filepath.Join(home, ".config")
	}
	if configDir != "" {
		podman = append(podman, filepath.Join(configDir, "containers", "auth.json"))
	}
	for _, f := range podman {
		if isFile(f) {
			return f, nil
		}
	}
	return "", append(looked, podman...)
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir()
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

// hasHelper reports whether cf's credHelpers names a helper for registry.
func hasHelper(cf *configfile.ConfigFile, registry string) bool {
	if registry == name.DefaultRegistry {
		registry = authn.DefaultAuthKey
	}
	return cf.CredentialHelpers[registry] != ""
}

// authEntry is the auths key docker-cli's file store matches for key:
// key itself, or one that names the same host with a scheme or path
// ("https://HOST/v1/").
func authEntry(cf *configfile.ConfigFile, key string) string {
	if _, ok := cf.AuthConfigs[key]; ok {
		return key
	}
	for k := range cf.AuthConfigs {
		if credentials.ConvertToHostname(k) == key {
			return k
		}
	}
	return ""
}

// authReportFor is the recorded report for host, or a fresh lookup.
func authReportFor(host string) authReport {
	if r, ok := authReports.Load(host); ok {
		return r.(authReport)
	}
	reg, err := name.NewRegistry(host)
	if err != nil {
		return authReport{host: host}
	}
	_, rep := lookupAuth(reg)
	return rep
}

// source says where the credentials that were sent came from.
func (r authReport) source() string {
	switch {
	case r.helper != "":
		return fmt.Sprintf("from credential helper docker-credential-%s (%s in %s)", r.helper, r.by, r.file)
	case r.entry != "":
		return fmt.Sprintf("in %s (auths entry %q)", r.file, r.entry)
	case r.file == "":
		return "in DOCKER_AUTH_CONFIG"
	}
	return "in " + r.file + " or DOCKER_AUTH_CONFIG"
}

// missing says where credentials were looked for and not found.
func (r authReport) missing() string {
	switch {
	case r.file == "" && r.env:
		return fmt.Sprintf("no credentials for %s in DOCKER_AUTH_CONFIG, and there is no docker config file (looked for %s)", r.host, strings.Join(r.looked, ", "))
	case r.file == "":
		return fmt.Sprintf("no credentials for %s: there is no docker config file (looked for %s)", r.host, strings.Join(r.looked, ", "))
	case r.absent:
		return fmt.Sprintf("no credentials for %s: %s does not exist", r.host, r.file)
	case r.helper != "":
		return fmt.Sprintf("no credentials for %s from credential helper docker-credential-%s (%s in %s)", r.host, r.helper, r.by, r.file)
	}
	return fmt.Sprintf("no credentials for %s in %s", r.host, r.file)
}
