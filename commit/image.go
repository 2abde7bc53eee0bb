package commit

import (
	"fmt"
	"maps"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Step is one history entry of the new image. A step with a nil Layer
// changed no file: its history entry is marked empty_layer.
type Step struct {
	Layer     v1.Layer
	CreatedBy string
	Comment   string
}

// Config holds the image config fields a recipe can set. Zero values keep
// the base image's value, except where noted.
type Config struct {
	// Env, if non-nil, replaces the base's environment as a whole.
	Env []string
	// Entrypoint replaces the base's when EntrypointSet is true (a nil or
	// empty Entrypoint then clears it); when EntrypointSet is false the
	// base's is kept and Entrypoint is ignored. As in a Dockerfile, setting
	// the entrypoint without setting Cmd clears the base's Cmd.
	Entrypoint    []string
	EntrypointSet bool
	// Cmd replaces the base's when CmdSet is true (nil or empty clears it).
	Cmd        []string
	CmdSet     bool
	WorkingDir string
	User       string
	// Labels are merged over the base's.
	Labels map[string]string
	// ExposedPorts, config keys such as "8080/tcp" (the recipe checked
	// them), and Volumes are added to the base's.
	ExposedPorts []string
	Volumes      []string
	StopSignal   string
}

// ImageOptions says what Image builds on a base.
type ImageOptions struct {
	Steps  []Step
	Config Config
	// Created is the config's created time and that of every new history
	// entry; pass SOURCE_DATE_EPOCH here for reproducible images. Zero
	// means now.
	Created time.Time
	// Annotations are set on the manifest.
	Annotations map[string]string
	// Platform, if non-nil, sets the config's os, architecture and
	// variant. Otherwise the base's are kept, or, for a base that names
	// none (empty.Image), the host's (linux/GOARCH) are written.
	Platform *v1.Platform
}

// Image assembles base plus one history entry per step into an image with
// OCI media types. The base's layers and history are kept as they are (their
// descriptors only change to the equivalent OCI media type); the config's
// author and the base's docker build provenance (container, docker_version)
// are dropped. The result is computed lazily by ggcr: layer
// blobs are only read when the image is written.
func Image(base v1.Image, o ImageOptions) (v1.Image, error) {
	baseCfg, err := base.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading base config: %w", err)
	}
	baseManifest, err := base.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading base manifest: %w", err)
	}
	baseLayers, err := BaseLayers(base)
	if err != nil {
		return nil, fmt.Errorf("reading base layers: %w", err)
	}
	if len(baseLayers) != len(baseManifest.Layers) {
		return nil, fmt.Errorf("base has %d layers but %d manifest entries", len(baseLayers), len(baseManifest.Layers))
	}

	cfg := baseCfg.DeepCopy()
	cfg.Author = ""
	cfg.Container = ""
	cfg.DockerVersion = "" //nolint:staticcheck // deprecated in ggcr but still serialised: drop the base's docker provenance
	cfg.RootFS.Type = "layers"
	// ONBUILD triggers are the base's, for a build on it (which strata
	// does not run, and says so): docker's image leaves them out too.
	cfg.Config.OnBuild = nil
	cfg.History = historyOfLayers(cfg.History, len(baseLayers), cfg.Created)
	applyConfig(&cfg.Config, o.Config)
	setPlatform(cfg, o.Platform)
	now := o.Created
	if now.IsZero() {
		now = time.Now()
	}
	created := v1.Time{Time: now.UTC()}
	cfg.Created = created

	adds := make([]mutate.Addendum, 0, len(baseLayers)+len(o.Steps))
	for i, l := range baseLayers {
		adds = append(adds, mutate.Addendum{Layer: l, MediaType: ociLayerType(baseManifest.Layers[i].MediaType)})
	}
	for i, s := range o.Steps {
		h := v1.History{Created: created, CreatedBy: s.CreatedBy, Comment: s.Comment, EmptyLayer: s.Layer == nil}
		cfg.History = append(cfg.History, h)
		if s.Layer == nil {
			continue
		}
		diffID, err := s.Layer.DiffID()
		if err != nil {
			return nil, fmt.Errorf("step %d: reading layer diffID: %w", i+1, err)
		}
		mt, err := s.Layer.MediaType()
		if err != nil {
			return nil, fmt.Errorf("step %d: reading layer media type: %w", i+1, err)
		}
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
		adds = append(adds, mutate.Addendum{Layer: s.Layer, MediaType: ociLayerType(mt)})
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	// Append also appends (empty) history per addendum to its own config;
	// ConfigFile below replaces that config with the real one as a whole.
	img, err = mutate.Append(img, adds...)
	if err != nil {
		return nil, fmt.Errorf("adding layers: %w", err)
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("setting config: %w", err)
	}
	if len(o.Annotations) > 0 {
		img = mutate.Annotations(img, o.Annotations).(v1.Image)
	}
	return img, nil
}

// applyConfig merges c into cfg.
func applyConfig(cfg *v1.Config, c Config) {
	if c.Env != nil {
		cfg.Env = slices.Clone(c.Env)
	}
	if c.EntrypointSet {
		cfg.Entrypoint = slices.Clone(c.Entrypoint)
		if !c.CmdSet {
			cfg.Cmd = nil
		}
	}
	if c.CmdSet {
		cfg.Cmd = slices.Clone(c.Cmd)
	}
	if c.WorkingDir != "" {
		cfg.WorkingDir = c.WorkingDir
	}
	if c.User != "" {
		cfg.User = c.User
	}
	if c.StopSignal != "" {
		cfg.StopSignal = c.StopSignal
	}
	if len(c.Labels) > 0 {
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		maps.Copy(cfg.Labels, c.Labels)
	}
	for _, p := range c.ExposedPorts {
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		cfg.ExposedPorts[p] = struct{}{}
	}
	for _, v := range c.Volumes {
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		cfg.Volumes[v] = struct{}{}
	}
}

// setPlatform writes p into cfg, or the host's platform if neither p nor
// cfg names one.
func setPlatform(cfg *v1.ConfigFile, p *v1.Platform) {
	if p == nil && cfg.OS != "" {
		return
	}
	if p == nil {
		h := hostPlatform()
		p = &h
	}
	cfg.OS, cfg.Architecture, cfg.Variant = p.OS, p.Architecture, p.Variant
	if p.OSVersion != "" {
		cfg.OSVersion = p.OSVersion
	}
}

// historyOfLayers returns history with one non-empty entry for each of
// layers base layers, as BuildKit's exporter normalises it. A base made
// without history (or with fewer non-empty entries than layers) would
// otherwise have strata's entries name its layers (docker history put a
// base layer under the first run step): the added entries, as BuildKit
// adds them, come after the base's own, dated when the base was made. A
// base with more non-empty entries than layers (an invalid config) would
// put the step layers under base entries: those past the last layer are
// marked empty_layer, as BuildKit marks them (see SurplusHistory).
func historyOfLayers(history []v1.History, layers int, created v1.Time) []v1.History {
	n := 0
	for i := range history {
		switch {
		case history[i].EmptyLayer:
		case n == layers:
			history[i].EmptyLayer = true
		default:
			n++
		}
	}
	for ; n < layers; n++ {
		history = append(history, v1.History{Created: created, Comment: "strata: a base layer the base image's history leaves out"})
	}
	return history
}

// SurplusHistory is how many non-empty entries the history of a base's
// config cfg has past its layers: an invalid config, which BuildKit warns
// of as "invalid image config with unaccounted layers". Image marks them
// empty_layer, the last ones, so that each layer keeps the entry before.
func SurplusHistory(cfg *v1.ConfigFile) int {
	n := 0
	for _, h := range cfg.History {
		if !h.EmptyLayer {
			n++
		}
	}
	return max(n-len(cfg.RootFS.DiffIDs), 0)
}

// ociLayerType maps Docker layer media types to their OCI equivalents.
func ociLayerType(mt types.MediaType) types.MediaType {
	switch mt {
	case types.DockerLayer:
		return types.OCILayer
	case types.DockerUncompressedLayer:
		return types.OCIUncompressedLayer
	case types.DockerForeignLayer:
		return types.OCIRestrictedLayer
	}
	return mt
}
