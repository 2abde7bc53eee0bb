package commit_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/testutil"
)

// TestDocker checks what a docker daemon makes of strata's output: a
// docker-archive given to `docker load`, and Load. One private dockerd
// serves both.
func TestDocker(t *testing.T) {
	host := testutil.StartDockerd(t)
	env := []string{"DOCKER_HOST=" + host}
	docker := func(t *testing.T, args ...string) string {
		t.Helper()
		return strings.TrimSpace(run(t, env, testutil.DockerPath, args...))
	}
	// checkImage asserts the daemon holds img under tag and that a
	// container of it sees the committed layer over the base.
	checkImage := func(t *testing.T, tag, motd, wantID string) {
		t.Helper()
		if id := docker(t, "image", "inspect", "--format", "{{.Id}}", tag); id != wantID {
			t.Errorf("docker image inspect %s: Id = %s, want the config digest %s", tag, id, wantID)
		}
		if got := docker(t, "run", "--rm", "--network", "none", tag); got != strings.TrimSpace(motd) {
			t.Errorf("docker run %s printed %q, want %q", tag, got, motd)
		}
	}

	t.Run("docker load of WriteDockerArchive", func(t *testing.T) {
		img := motdImage(t, "from the archive\n")
		cfg, err := img.ConfigName()
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "img.tar")
		tags := []string{"strata.test/archive:v1", "strata.test/archive:latest"}
		if err := commit.WriteDockerArchive(t.Context(), file, img, tags); err != nil {
			t.Fatalf("WriteDockerArchive: %v", err)
		}
		out := docker(t, "load", "--input", file)
		for _, tag := range tags {
			if !strings.Contains(out, "Loaded image: "+tag) {
				t.Errorf("docker load output lacks %q:\n%s", tag, out)
			}
			checkImage(t, tag, "from the archive", cfg.String())
		}
		// Pull reads the archive back to the same image.
		back, err := pullRef(t, "docker-archive://"+file, commit.PullOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := back.ConfigName(); got != cfg {
			t.Errorf("Pull(docker-archive://) config digest = %v, want %v", got, cfg)
		}
	})

	t.Run("Load", func(t *testing.T) {
		t.Setenv("DOCKER_HOST", host)
		img := motdImage(t, "from Load\n")
		cfg, err := img.ConfigName()
		if err != nil {
			t.Fatal(err)
		}
		if err := commit.Load(t.Context(), img, []string{"strata.test/load:v1"}); err != nil {
			t.Fatalf("Load: %v", err)
		}
		checkImage(t, "strata.test/load:v1", "from Load", cfg.String())
	})

	t.Run("Load fails when a blob cannot be read", func(t *testing.T) {
		t.Setenv("DOCKER_HOST", host)
		// A layer whose blob vanished: the stream breaks midway.
		l := newLayer(t, map[string]string{"etc/motd": "x"})
		img, err := commit.Image(pullBusybox(t), commit.ImageOptions{Steps: []commit.Step{{Layer: l}}, Created: epoch})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(l.Path()); err != nil {
			t.Fatal(err)
		}
		if err := commit.Load(t.Context(), img, []string{"strata.test/broken:v1"}); err == nil {
			t.Error("Load of an image with a missing blob succeeded")
		}
	})
}
