package testutil

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// DebianTag is the ref name of the image in DebianLayout.
const DebianTag = "bookworm"

// debianCache keeps the debootstrapped layout between test runs on one
// machine; a fresh CI machine makes it once per run.
var debianCache = filepath.Join(os.TempDir(), "strata-test-debian-bookworm")

var debian struct {
	once sync.Once
	err  error
}

// DebianLayout returns an OCI layout holding a Debian bookworm image made
// with `debootstrap --variant=minbase` from the mirror apt uses on this
// machine, tagged DebianTag. It is made once (a few minutes) and kept in
// the temp dir; callers must not modify it. Skips (or fails) without
// debootstrap or a reachable mirror.
func DebianLayout(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	Require(t, "debootstrap", func() error { _, err := exec.LookPath("debootstrap"); return err },
		"apt-get install -y debootstrap")
	debian.once.Do(func() {
		if _, err := os.Stat(filepath.Join(debianCache, "index.json")); err == nil {
			return
		}
		debian.err = makeDebian(t)
	})
	if debian.err != nil {
		t.Fatalf("making the Debian base: %v", debian.err)
	}
	return debianCache
}

func makeDebian(t testing.TB) error {
	mirror, err := DebianMirror()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp(filepath.Dir(debianCache), "strata-debootstrap-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	rootfs := filepath.Join(work, "rootfs")
	t.Logf("debootstrap --variant=minbase bookworm from %s (once)", mirror)
	out, err := exec.Command("debootstrap", "--variant=minbase", "bookworm", rootfs, mirror).CombinedOutput()
	if err != nil {
		return fmt.Errorf("debootstrap: %w\n%s", err, tail(string(out), 20))
	}
	for _, glob := range []string{"var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_*", "var/log/*.log"} {
		matches, _ := filepath.Glob(filepath.Join(rootfs, glob))
		for _, m := range matches {
			os.Remove(m)
		}
	}
	layerTar := filepath.Join(work, "layer.tar")
	if out, err := exec.Command("tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", rootfs,
		"-cf", layerTar, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("tar: %w\n%s", err, out)
	}
	layer, err := tarball.LayerFromFile(layerTar)
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	img, err = mutate.Config(img, v1.Config{
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Cmd: []string{"bash"},
	})
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", goarch()
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return err
	}
	staging := filepath.Join(work, "layout")
	p, err := layout.Write(staging, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": DebianTag})); err != nil {
		return err
	}
	os.RemoveAll(debianCache)
	return os.Rename(staging, debianCache)
}

func goarch() string {
	out, err := exec.Command("dpkg", "--print-architecture").Output()
	if err != nil {
		return "amd64"
	}
	return strings.TrimSpace(string(out))
}

// DebianMirror is the Debian mirror apt uses here: the first URI of a
// bookworm source in /etc/apt/sources.list.d/*.sources or sources.list.
func DebianMirror() (string, error) {
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	files = append(files, "/etc/apt/sources.list")
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		s := bufio.NewScanner(fh)
		var uri string
		for s.Scan() {
			line := strings.TrimSpace(s.Text())
			switch {
			case strings.HasPrefix(line, "URIs:"):
				uri = strings.Fields(strings.TrimPrefix(line, "URIs:"))[0]
			case strings.HasPrefix(line, "Suites:") && uri != "" && strings.Contains(line, "bookworm") &&
				!strings.Contains(uri, "security"):
				fh.Close()
				return uri, nil
			case strings.HasPrefix(line, "deb ") && strings.Contains(line, " bookworm "):
				for _, f := range strings.Fields(line)[1:] {
					if !strings.HasPrefix(f, "[") && !strings.HasSuffix(f, "]") {
						fh.Close()
						return f, nil
					}
				}
			}
		}
		fh.Close()
	}
	return "", fmt.Errorf("no bookworm source in /etc/apt")
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
