package commit_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/testutil"
)

var epoch = time.Unix(1700000000, 0).UTC()

// newLayer commits a small layer holding files.
func newLayer(t testing.TB, files map[string]string) *commit.Layer {
	t.Helper()
	l, err := commit.WriteLayer(t.Context(), bytes.NewReader(testTar(t, files)), t.TempDir(), commit.Gzip)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func pullBusybox(t testing.TB) v1.Image {
	t.Helper()
	img, err := pullRef(t, testutil.BusyboxRef(t), commit.PullOptions{})
	if err != nil {
		t.Fatalf("Pull busybox: %v", err)
	}
	return img
}

func TestImage(t *testing.T) {
	base := pullBusybox(t)
	baseCfg, err := base.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	baseManifest, err := base.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	l1 := newLayer(t, map[string]string{"etc/motd": "one\n"})
	l2 := newLayer(t, map[string]string{"etc/motd": "two\n"})
	img, err := commit.Image(base, commit.ImageOptions{
		Steps: []commit.Step{
			{Layer: l1, CreatedBy: "run: echo one > /etc/motd", Comment: "strata"},
			{CreatedBy: "env: A=1"},
			{Layer: l2, CreatedBy: "run: echo two > /etc/motd"},
		},
		Config: commit.Config{
			Env:           []string{"PATH=/bin", "A=1"},
			Entrypoint:    []string{"/bin/busybox"},
			EntrypointSet: true,
			WorkingDir:    "/tmp",
			User:          "app",
			Labels:        map[string]string{"org.opencontainers.image.title": "demo"},
			ExposedPorts:  []string{"8080/tcp", "53/udp"},
			Volumes:       []string{"/data"},
			StopSignal:    "SIGTERM",
		},
		Created:     epoch,
		Annotations: map[string]string{"org.opencontainers.image.source": "https://example.invalid/demo"},
	})
	if err != nil {
		t.Fatalf("Image: %v", err)
	}

	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	wantConfig := v1.Config{
		Env:          []string{"PATH=/bin", "A=1"},
		Entrypoint:   []string{"/bin/busybox"},
		WorkingDir:   "/tmp",
		User:         "app",
		Labels:       map[string]string{"org.opencontainers.image.title": "demo"},
		ExposedPorts: map[string]struct{}{"8080/tcp": {}, "53/udp": {}},
		Volumes:      map[string]struct{}{"/data": {}},
		StopSignal:   "SIGTERM",
	}
	if diff := cmp.Diff(wantConfig, cfg.Config); diff != "" {
		t.Errorf("config (Cmd cleared by the entrypoint) (-want +got):\n%s", diff)
	}
	ep := v1.Time{Time: epoch}
	wantHistory := append(append([]v1.History(nil), baseCfg.History...),
		v1.History{Created: ep, CreatedBy: "run: echo one > /etc/motd", Comment: "strata"},
		v1.History{Created: ep, CreatedBy: "env: A=1", EmptyLayer: true},
		v1.History{Created: ep, CreatedBy: "run: echo two > /etc/motd"},
	)
	if diff := cmp.Diff(wantHistory, cfg.History); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	d1, _ := l1.DiffID()
	d2, _ := l2.DiffID()
	wantRootFS := v1.RootFS{Type: "layers", DiffIDs: append(append([]v1.Hash(nil), baseCfg.RootFS.DiffIDs...), d1, d2)}
	if diff := cmp.Diff(wantRootFS, cfg.RootFS); diff != "" {
		t.Errorf("rootfs (-want +got):\n%s", diff)
	}
	if !cfg.Created.Equal(epoch) {
		t.Errorf("config created = %v, want %v", cfg.Created, epoch)
	}
	if cfg.OS != "linux" || cfg.Architecture != baseCfg.Architecture {
		t.Errorf("platform = %s/%s, want linux/%s (the base's)", cfg.OS, cfg.Architecture, baseCfg.Architecture)
	}

	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	g1, _ := l1.Digest()
	g2, _ := l2.Digest()
	s1, _ := l1.Size()
	s2, _ := l2.Size()
	wantLayers := append(append([]v1.Descriptor(nil), baseManifest.Layers...),
		v1.Descriptor{MediaType: types.OCILayer, Digest: g1, Size: s1},
		v1.Descriptor{MediaType: types.OCILayer, Digest: g2, Size: s2},
	)
	if diff := cmp.Diff(wantLayers, m.Layers); diff != "" {
		t.Errorf("manifest layers (-want +got):\n%s", diff)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("media types = %s, config %s; want OCI", m.MediaType, m.Config.MediaType)
	}
	if got := m.Annotations["org.opencontainers.image.source"]; got != "https://example.invalid/demo" {
		t.Errorf("manifest annotation = %q", got)
	}

	// The same inputs make the same image.
	again, err := commit.Image(base, commit.ImageOptions{
		Steps: []commit.Step{
			{Layer: l1, CreatedBy: "run: echo one > /etc/motd", Comment: "strata"},
			{CreatedBy: "env: A=1"},
			{Layer: l2, CreatedBy: "run: echo two > /etc/motd"},
		},
		Config:      commit.Config{Env: []string{"PATH=/bin", "A=1"}, Entrypoint: []string{"/bin/busybox"}, EntrypointSet: true, WorkingDir: "/tmp", User: "app", Labels: map[string]string{"org.opencontainers.image.title": "demo"}, ExposedPorts: []string{"53/udp", "8080/tcp"}, Volumes: []string{"/data"}, StopSignal: "SIGTERM"},
		Created:     epoch,
		Annotations: map[string]string{"org.opencontainers.image.source": "https://example.invalid/demo"},
	})
	if err != nil {
		t.Fatal(err)
	}
	dg1, _ := img.Digest()
	dg2, _ := again.Digest()
	if dg1 != dg2 {
		t.Errorf("same inputs, digests %v and %v", dg1, dg2)
	}
}

func TestImageConfigMerge(t *testing.T) {
	base, err := mutate.Config(pullBusybox(t), v1.Config{
		Env:        []string{"PATH=/bin"},
		Entrypoint: []string{"/entry"},
		Cmd:        []string{"sh"},
		Labels:     map[string]string{"a": "base", "b": "base"},
		WorkingDir: "/base",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		c    commit.Config
		want v1.Config
	}{
		{"nothing set keeps the base", commit.Config{Entrypoint: []string{"/ignored"}},
			v1.Config{Env: []string{"PATH=/bin"}, Entrypoint: []string{"/entry"}, Cmd: []string{"sh"}, Labels: map[string]string{"a": "base", "b": "base"}, WorkingDir: "/base"}},
		{"cmd alone keeps the entrypoint", commit.Config{Cmd: []string{"-c", "true"}, CmdSet: true},
			v1.Config{Env: []string{"PATH=/bin"}, Entrypoint: []string{"/entry"}, Cmd: []string{"-c", "true"}, Labels: map[string]string{"a": "base", "b": "base"}, WorkingDir: "/base"}},
		{"entrypoint clears the base cmd", commit.Config{Entrypoint: []string{"/app"}, EntrypointSet: true},
			v1.Config{Env: []string{"PATH=/bin"}, Entrypoint: []string{"/app"}, Labels: map[string]string{"a": "base", "b": "base"}, WorkingDir: "/base"}},
		{"entrypoint and cmd", commit.Config{Entrypoint: []string{"/app"}, EntrypointSet: true, Cmd: []string{"x"}, CmdSet: true},
			v1.Config{Env: []string{"PATH=/bin"}, Entrypoint: []string{"/app"}, Cmd: []string{"x"}, Labels: map[string]string{"a": "base", "b": "base"}, WorkingDir: "/base"}},
		{"set and empty clears", commit.Config{EntrypointSet: true, CmdSet: true},
			v1.Config{Env: []string{"PATH=/bin"}, Labels: map[string]string{"a": "base", "b": "base"}, WorkingDir: "/base"}},
		{"labels merge, env replaces", commit.Config{Labels: map[string]string{"b": "new", "c": "new"}, Env: []string{"X=1"}},
			v1.Config{Env: []string{"X=1"}, Entrypoint: []string{"/entry"}, Cmd: []string{"sh"}, Labels: map[string]string{"a": "base", "b": "new", "c": "new"}, WorkingDir: "/base"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := commit.Image(base, commit.ImageOptions{Config: tc.c, Created: epoch})
			if err != nil {
				t.Fatalf("Image: %v", err)
			}
			cfg, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, cfg.Config); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

// A Docker-typed base (as Docker Hub serves) becomes an OCI image; its
// layers keep their digests.
func TestImageDockerBase(t *testing.T) {
	base, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	if mt, _ := base.MediaType(); mt != types.DockerManifestSchema2 {
		t.Fatalf("random base media type = %s, want a Docker one", mt)
	}
	bm, err := base.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	img, err := commit.Image(base, commit.ImageOptions{Steps: []commit.Step{{Layer: newLayer(t, nil), CreatedBy: "run"}}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("media types = %s, config %s; want OCI", m.MediaType, m.Config.MediaType)
	}
	if len(m.Layers) != 3 {
		t.Fatalf("%d layers, want 3", len(m.Layers))
	}
	for i, l := range m.Layers[:2] {
		want := bm.Layers[i]
		want.MediaType = types.OCILayer
		if diff := cmp.Diff(want, l); diff != "" {
			t.Errorf("base layer %d (-want +got):\n%s", i, diff)
		}
	}
	cfg, _ := img.ConfigFile()
	if time.Since(cfg.Created.Time) > time.Minute {
		t.Errorf("created = %v with zero Created, want about now", cfg.Created)
	}
}

func TestImageScratch(t *testing.T) {
	for _, tc := range []struct {
		name string
		base v1.Image
		p    *v1.Platform
		want v1.Platform
	}{
		{"pulled scratch", mustPull(t, "scratch", &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}), nil, v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}},
		{"empty.Image with platform", empty.Image, &v1.Platform{OS: "linux", Architecture: "riscv64"}, v1.Platform{OS: "linux", Architecture: "riscv64"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := commit.Image(tc.base, commit.ImageOptions{
				Steps:    []commit.Step{{Layer: newLayer(t, map[string]string{"app": "x"}), CreatedBy: "copy"}},
				Created:  epoch,
				Platform: tc.p,
			})
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, *cfg.Platform()); diff != "" {
				t.Errorf("platform (-want +got):\n%s", diff)
			}
			if n := len(cfg.History); n != 1 {
				t.Errorf("%d history entries, want 1", n)
			}
			if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
				t.Errorf("media type = %s", mt)
			}
		})
	}
}

func mustPull(t testing.TB, ref string, p *v1.Platform) v1.Image {
	t.Helper()
	img, err := pullRef(t, ref, commit.PullOptions{Platform: p})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestImageBaseWithoutHistory: a base whose history leaves out its layers
// gets an entry for each before strata's own, so that every layer has its
// own entry (docker history put a base layer under the first step); the
// base's ONBUILD triggers, which strata does not run, are left out.
func TestImageBaseWithoutHistory(t *testing.T) {
	base, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := base.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.History = []v1.History{{CreatedBy: "ENV A=1", EmptyLayer: true}}
	cf.Config.OnBuild = []string{"RUN echo triggered > /onbuild.txt"}
	cf.Created = v1.Time{Time: epoch.Add(-time.Hour)}
	if base, err = mutate.ConfigFile(base, cf); err != nil {
		t.Fatal(err)
	}
	img, err := commit.Image(base, commit.ImageOptions{
		Steps:   []commit.Step{{Layer: newLayer(t, map[string]string{"a": "a"}), CreatedBy: "run: echo a > /a"}, {CreatedBy: "env: B=2"}},
		Created: epoch,
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	filler := v1.History{Created: cf.Created, Comment: "strata: a base layer the base image's history leaves out"}
	want := []v1.History{
		{CreatedBy: "ENV A=1", EmptyLayer: true}, filler, filler,
		{Created: v1.Time{Time: epoch}, CreatedBy: "run: echo a > /a"},
		{Created: v1.Time{Time: epoch}, CreatedBy: "env: B=2", EmptyLayer: true},
	}
	if d := cmp.Diff(want, got.History); d != "" {
		t.Errorf("history (-want +got):\n%s", d)
	}
	if got.Config.OnBuild != nil {
		t.Errorf("OnBuild = %q, want none", got.Config.OnBuild)
	}
}

// TestImageBaseWithSurplusHistory: a base whose history has more entries
// with a layer than it has layers (an invalid config) keeps its first ones
// for its layers; the surplus ones are marked empty_layer, as BuildKit
// marks them, so that the image has one non-empty entry per layer and the
// step's layer keeps the step's entry.
func TestImageBaseWithSurplusHistory(t *testing.T) {
	base, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := base.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.History = []v1.History{
		{CreatedBy: "layer 1"}, {CreatedBy: "ENV A=1", EmptyLayer: true}, {CreatedBy: "layer 2"},
		{CreatedBy: "x 1"}, {CreatedBy: "x 2"}, {CreatedBy: "ENV B=2", EmptyLayer: true}, {CreatedBy: "x 3"},
	}
	if base, err = mutate.ConfigFile(base, cf); err != nil {
		t.Fatal(err)
	}
	if got := commit.SurplusHistory(cf); got != 3 {
		t.Errorf("SurplusHistory = %d, want 3", got)
	}
	img, err := commit.Image(base, commit.ImageOptions{
		Steps:   []commit.Step{{Layer: newLayer(t, map[string]string{"a": "a"}), CreatedBy: "run: echo a > /a"}},
		Created: epoch,
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	want := []v1.History{
		{CreatedBy: "layer 1"}, {CreatedBy: "ENV A=1", EmptyLayer: true}, {CreatedBy: "layer 2"},
		{CreatedBy: "x 1", EmptyLayer: true}, {CreatedBy: "x 2", EmptyLayer: true},
		{CreatedBy: "ENV B=2", EmptyLayer: true}, {CreatedBy: "x 3", EmptyLayer: true},
		{Created: v1.Time{Time: epoch}, CreatedBy: "run: echo a > /a"},
	}
	if d := cmp.Diff(want, got.History); d != "" {
		t.Errorf("history (-want +got):\n%s", d)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	nonEmpty := 0
	for _, h := range got.History {
		if !h.EmptyLayer {
			nonEmpty++
		}
	}
	if nonEmpty != 3 || len(layers) != 3 {
		t.Errorf("%d history entries with a layer for %d layers, want 3 for 3", nonEmpty, len(layers))
	}
}
