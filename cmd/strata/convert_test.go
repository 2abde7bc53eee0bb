package main_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stratabuild/strata/internal/testutil"
	"github.com/stratabuild/strata/recipe"
)

// corpusDir is the Dockerfiles of the conversion corpus.
const corpusDir = "../../testdata/dockerfiles"

// dockerBuildable are the corpus members docker 20.10's builtin BuildKit
// builds here from a local busybox: no heredocs (its Dockerfile frontend
// predates them) and no base image from a registry.
var dockerBuildable = []string{
	"args-env", "busybox-basic", "busybox-multistage", "config-variants", "copy-flags", "shell-form",
}

// TestConvertCLI checks what scripts see: the recipe on stdout, each
// warning on stderr with its Dockerfile line, exit 0; exit 2 for a
// Dockerfile that does not parse or does not exist; ./Dockerfile by default.
func TestConvertCLI(t *testing.T) {
	r := strata(t, nil, "convert", filepath.Join(corpusDir, "unsupported", "Dockerfile"))
	if r.code != 0 {
		t.Fatalf("strata convert unsupported: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.HasPrefix(r.stdout, "# Converted from ") || !strings.Contains(r.stdout, "# HEALTHCHECK --interval=30s") {
		t.Errorf("stdout is not the recipe with HEALTHCHECK left as a comment:\n%s", r.stdout)
	}
	want := filepath.Join(corpusDir, "unsupported", "Dockerfile") + ":16: HEALTHCHECK has no strata equivalent; left as a comment\n"
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM busybox\nRUN echo hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(strataBin, "convert")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), "from: busybox:latest") {
		t.Errorf("strata convert in a dir with a Dockerfile: %v\n%s", err, out)
	}

	bad := filepath.Join(dir, "Bad.Dockerfile")
	if err := os.WriteFile(bad, []byte("FROM busybox\nRUN --mount=type=cache echo\nNOPE x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = strata(t, nil, "convert", bad)
	if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, bad+":3:") {
		t.Errorf("strata convert of a bad Dockerfile: exit %d, stdout %q, stderr %q; want 2, nothing, %s:3: ...", r.code, r.stdout, r.stderr, bad)
	}
	if r = strata(t, nil, "convert", filepath.Join(dir, "missing")); r.code != 2 {
		t.Errorf("strata convert of a missing file: exit %d, want 2", r.code)
	}
}

// TestConvertBuildsLikeDocker converts the Dockerfiles that build here,
// checks each recipe with strata validate, builds it with strata and the
// Dockerfile with docker (BuildKit), both on the same busybox base, and
// compares the two images: their file trees as umoci unpacks them (paths,
// types, modes, owners, content, link targets; not mtimes) and their
// configs.
func TestConvertBuildsLikeDocker(t *testing.T) {
	requireBuildTools(t)
	testutil.Require(t, "skopeo", func() error { _, err := exec.LookPath("skopeo"); return err }, "apt-get install -y skopeo")
	host := testutil.StartDockerd(t)
	denv := []string{"DOCKER_HOST=" + host, "DOCKER_BUILDKIT=1"}
	layout := testutil.BusyboxLayout(t)
	archive := filepath.Join(t.TempDir(), "busybox.tar")
	run(t, nil, "skopeo", "copy", "oci:"+layout+":"+testutil.BusyboxTag, "docker-archive:"+archive+":busybox:latest")
	run(t, denv, testutil.DockerPath, "load", "-i", archive)

	for _, name := range dockerBuildable {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(corpusDir, name)
			ctx := filepath.Join(dir, "context")
			if _, err := os.Stat(ctx); err != nil {
				ctx = t.TempDir()
			}
			work := t.TempDir()
			r := strata(t, nil, "convert", filepath.Join(dir, "Dockerfile"))
			if r.code != 0 {
				t.Fatalf("strata convert: exit %d\n%s", r.code, r.stderr)
			}
			// No registry is reachable: docker's busybox:latest is the
			// local image loaded above, strata's the same image's layout.
			recipeText := strings.ReplaceAll(r.stdout, "busybox:latest", "oci-layout://"+layout+":"+testutil.BusyboxTag)
			recipeFile := filepath.Join(work, "strata.yaml")
			if err := os.WriteFile(recipeFile, []byte(recipeText), 0o644); err != nil {
				t.Fatal(err)
			}
			if v := strata(t, nil, "validate", "-f", recipeFile, ctx); v.code != 0 {
				t.Fatalf("strata validate: exit %d\n%s\n%s", v.code, v.stderr, recipeText)
			}
			soci := filepath.Join(work, "strata.oci")
			mustBuild(t, nil, "--root", filepath.Join(work, "root"), "-f", recipeFile, "-t", "conv:strata", "-o", "type=oci,dest="+soci, ctx)

			tag := "strata-convert/" + name + ":docker"
			run(t, denv, testutil.DockerPath, "build", "--network=host", "-f", filepath.Join(dir, "Dockerfile"), "-t", tag, ctx)
			dtar, doci := filepath.Join(work, "docker.tar"), filepath.Join(work, "docker.oci")
			run(t, denv, testutil.DockerPath, "save", "-o", dtar, tag)
			run(t, nil, "skopeo", "copy", "docker-archive:"+dtar+":"+tag, "oci:"+doci+":conv:docker")

			sTree := unpackTree(t, soci+":conv:strata")
			dTree := unpackTree(t, doci+":conv:docker")
			// docker's runtime leaves the mount points it created for a RUN
			// (/dev, /proc, /sys) in the layer; strata never commits mount
			// stubs (RECIPE.md). Only those, empty and absent from strata's
			// tree, are not compared.
			for _, stub := range []string{"dev", "proc", "sys"} {
				if _, ok := sTree[stub]; !ok && dTree[stub].Type == "dir" && !hasChildren(dTree, stub) {
					delete(dTree, stub)
				}
			}
			if diff := cmp.Diff(dTree, sTree); diff != "" {
				t.Errorf("file trees differ (-docker +strata):\n%s\nrecipe:\n%s", diff, recipeText)
			}
			sCfg, dCfg := imageConfig(t, "oci:"+soci+":conv:strata"), imageConfig(t, "oci:"+doci+":conv:docker")
			if diff := cmp.Diff(dCfg, sCfg); diff != "" {
				t.Errorf("image configs differ (-docker +strata):\n%s", diff)
			}
		})
	}
}

// TestConvertedRecipeRunsAsDocker builds a converted Dockerfile whose RUNs
// write what they see, and checks the files and the config against what
// docker (BuildKit) gives: an ARG over an earlier ENV of its name (RUN and
// later values see the ARG's value, the config keeps the ENV's), a SHELL
// back to /bin/sh -c in a stage built on one with another shell, an ENV
// setting a name twice.
func TestConvertedRecipeRunsAsDocker(t *testing.T) {
	requireBuildTools(t)
	layout := testutil.BusyboxLayout(t)
	work, ctx := t.TempDir(), t.TempDir()
	df := filepath.Join(work, "Dockerfile")
	if err := os.WriteFile(df, []byte(`FROM busybox AS parent
SHELL ["/bin/sh", "-ec"]
RUN echo "parent $-" > /p.txt
FROM parent
SHELL ["/bin/sh", "-c"]
ENV MODE=prod
ARG MODE=dev
ENV A=0
ENV A=1 B=x$A A=2
RUN echo "child $- MODE=$MODE A=$A B=$B" > /c.txt
ENV DERIVED=$MODE
`), 0o644); err != nil {
		t.Fatal(err)
	}
	r := strata(t, nil, "convert", df)
	if r.code != 0 {
		t.Fatalf("strata convert: exit %d\n%s", r.code, r.stderr)
	}
	recipeText := strings.ReplaceAll(r.stdout, "busybox:latest", "oci-layout://"+layout+":"+testutil.BusyboxTag)
	recipeFile := filepath.Join(work, "strata.yaml")
	if err := os.WriteFile(recipeFile, []byte(recipeText), 0o644); err != nil {
		t.Fatal(err)
	}
	oci := filepath.Join(work, "oci")
	mustBuild(t, nil, "--root", filepath.Join(work, "root"), "-f", recipeFile, "-t", "conv:test", "-o", "type=oci,dest="+oci, ctx)
	rootfs := unpackRootfs(t, oci+":conv:test")
	for file, want := range map[string]string{"p.txt": "parent ce\n", "c.txt": "child c MODE=dev A=2 B=x0\n"} {
		got, err := os.ReadFile(filepath.Join(rootfs, file))
		if err != nil || string(got) != want {
			t.Errorf("/%s = %q (%v), want docker's %q\nrecipe:\n%s", file, got, err, want, recipeText)
		}
	}
	wantEnv := append(append([]string(nil), testutil.BusyboxEnv...), "MODE=prod", "A=2", "B=x0", "DERIVED=dev")
	if got := imageConfig(t, "oci:"+oci+":conv:test").Env; !cmp.Equal(got, wantEnv) {
		t.Errorf("config Env = %q, want docker's %q", got, wantEnv)
	}
}

func hasChildren(tree map[string]treeEntry, dir string) bool {
	for p := range tree {
		if strings.HasPrefix(p, dir+"/") {
			return true
		}
	}
	return false
}

// treeEntry is what the comparison sees of a file.
type treeEntry struct {
	Type     string
	Mode     string
	UID, GID uint32
	// Content is the sha256 of a regular file, the target of a symlink.
	Content string
}

// unpackRootfs unpacks image (LAYOUT:REF) with umoci; it returns the
// rootfs directory.
func unpackRootfs(t *testing.T, image string) string {
	t.Helper()
	bundle := filepath.Join(t.TempDir(), "bundle")
	run(t, nil, "umoci", "unpack", "--image", image, bundle)
	return filepath.Join(bundle, "rootfs")
}

// unpackTree unpacks image (LAYOUT:REF) with umoci and lists its rootfs.
func unpackTree(t *testing.T, image string) map[string]treeEntry {
	t.Helper()
	rootfs := unpackRootfs(t, image)
	tree := map[string]treeEntry{}
	err := filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == rootfs {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		e := treeEntry{Mode: fmt.Sprintf("%v", fi.Mode().Perm()|fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)), UID: st.Uid, GID: st.Gid}
		switch {
		case fi.Mode().IsRegular():
			e.Type = "file"
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			e.Content = hex.EncodeToString(sum[:8])
		case fi.IsDir():
			e.Type = "dir"
		case fi.Mode()&fs.ModeSymlink != 0:
			e.Type = "symlink"
			e.Content, err = os.Readlink(p)
			if err != nil {
				return err
			}
			e.Mode = ""
		default:
			e.Type = fi.Mode().Type().String()
		}
		rel, _ := filepath.Rel(rootfs, p)
		tree[rel] = e
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", rootfs, err)
	}
	return tree
}

// configView is the part of an image config a Dockerfile and a recipe set.
type configView struct {
	Entrypoint, Cmd, Env []string
	WorkingDir, User     string
	Labels               map[string]string
	ExposedPorts         []string
	Volumes              []string
	StopSignal           string
}

// imageConfig reads the config of image (a skopeo reference).
func imageConfig(t *testing.T, image string) configView {
	t.Helper()
	var cfg struct {
		Config struct {
			Entrypoint, Cmd, Env []string
			WorkingDir, User     string
			Labels               map[string]string
			ExposedPorts         map[string]struct{}
			Volumes              map[string]struct{}
			StopSignal           string
		} `json:"config"`
	}
	if err := json.Unmarshal([]byte(run(t, nil, "skopeo", "inspect", "--config", image)), &cfg); err != nil {
		t.Fatalf("reading the config of %s: %v", image, err)
	}
	c := cfg.Config
	v := configView{Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir, User: c.User, Labels: c.Labels, StopSignal: c.StopSignal}
	// docker keeps STOPSIGNAL as written ("3"), strata writes the name.
	if sig, err := recipe.ParseSignal(v.StopSignal); err == nil {
		v.StopSignal = sig
	}
	if len(v.Labels) == 0 {
		v.Labels = nil
	}
	for p := range c.ExposedPorts {
		v.ExposedPorts = append(v.ExposedPorts, p)
	}
	for p := range c.Volumes {
		v.Volumes = append(v.Volumes, p)
	}
	sort.Strings(v.ExposedPorts)
	sort.Strings(v.Volumes)
	if len(v.Entrypoint) == 0 {
		v.Entrypoint = nil
	}
	if len(v.Cmd) == 0 {
		v.Cmd = nil
	}
	return v
}
