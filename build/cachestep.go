package build

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/stratabuild/strata/build/cache"
	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/recipe"
)

// stepDef is the canonical form of a step's expanded definition: what
// goes into its cache key besides the state it runs on. A secret's
// content is never part of it, only the mount's id and target.
type stepDef struct {
	Text        string   `json:"text"`
	Kind        string   `json:"kind"`
	Argv        []string `json:"argv,omitempty"`
	Network     string   `json:"network,omitempty"`
	Env         []string `json:"env,omitempty"`
	Mounts      []string `json:"mounts,omitempty"`
	Sources     []string `json:"sources,omitempty"`
	To          string   `json:"to,omitempty"`
	Owner       string   `json:"owner,omitempty"`
	Mode        string   `json:"mode,omitempty"`
	From        string   `json:"from,omitempty"` // a stage's layer chain, or an image digest
	Epoch       string   `json:"epoch,omitempty"`
	Compression string   `json:"compression,omitempty"`
}

// stepInputs computes what determines a run or copy step's result.
func (b *builder) stepInputs(ctx context.Context, res *stageResult, step *recipe.Step) (*cache.Inputs, error) {
	st := res.stage
	def := stepDef{Text: describe(step), Kind: step.Kind.String(), Compression: b.opts.Compression}
	if b.created != nil {
		def.Epoch = b.created.UTC().Format(time.RFC3339)
	}
	in := &cache.Inputs{
		StepID:  fmt.Sprintf("%s:%s:%d", b.recipe.File, st.Name, step.Index),
		Parent:  diffIDs(res.chain),
		Env:     res.env,
		User:    res.user,
		Workdir: res.workdir,
		Shell:   st.Shell,
		Base:    res.baseDigest,
		Args:    map[string]string{},
	}
	for _, a := range b.recipe.Args {
		in.Args[a.Name] = a.Value
	}
	switch step.Kind {
	case recipe.RunStep:
		r := step.Run
		def.Argv = r.Argv()
		def.Network = string(r.Network)
		for _, e := range r.Env {
			def.Env = append(def.Env, e.String())
		}
		for _, m := range r.Mounts {
			def.Mounts = append(def.Mounts, fmt.Sprintf("%s:%s:%s", m.Type, m.Target, m.ID))
		}
	case recipe.CopyStep:
		c := step.Copy
		def.Sources, def.To = c.Sources, c.To
		if c.Owner != nil {
			def.Owner = c.Owner.String()
		}
		if c.Mode != nil {
			def.Mode = fmt.Sprintf("%#o", uint32(c.Mode.Perm())|uint32(*c.Mode&(1<<23|1<<22|1<<20)))
		}
		switch {
		case c.From == nil:
			ignore, err := loadIgnore(b.recipe.Context)
			if err != nil {
				return nil, err
			}
			paths, err := contextInputs(b.recipe.Context, ignore, c.Sources)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", stepPos(step.Pos), err)
			}
			if in.Files, err = cache.HashFiles(b.recipe.Context, paths); err != nil {
				return nil, fmt.Errorf("%s: hashing copy inputs: %w", stepPos(step.Pos), err)
			}
		case c.From.Kind == recipe.KindStage:
			src, err := b.waitStage(ctx, c.From.Stage)
			if err != nil {
				return nil, err
			}
			def.From = "stage " + strings.Join(diffIDs(src.chain), ",")
		case c.From.Kind == recipe.KindScratch:
			def.From = "scratch"
		default:
			img, err := b.pull(ctx, *c.From, st.Platform)
			if err != nil {
				return nil, fmt.Errorf("%s: copy from %s: %w", stepPos(step.Pos), c.From.Ref, err)
			}
			d, err := img.Digest()
			if err != nil {
				return nil, err
			}
			def.From = "image " + d.String()
		}
	}
	data, err := json.Marshal(def)
	if err != nil {
		return nil, err
	}
	in.Step = string(data)
	return in, nil
}

// hit is a cached result of a step.
type hit struct {
	entry  *cache.Entry
	layer  v1.Layer // nil when the step changed no file
	remote string   // the cache repository it came from; "" if local
}

// lookup finds key in the local index (whose blob must still be there),
// then in each --cache-from repository.
func (b *builder) lookup(ctx context.Context, key string) (*hit, error) {
	if e, ok := b.index.Get(key); ok {
		if e.Layer == nil {
			b.index.Touch(e)
			return &hit{entry: e}, nil
		}
		if l, err := openBlob(b.blobs, e.Layer); err == nil {
			b.index.Touch(e)
			return &hit{entry: e, layer: l}, nil
		}
	}
	for _, ref := range b.opts.CacheFrom {
		repo, tag := cacheRef(ref, key)
		data, layer, found, err := commit.CacheGet(ctx, repo, tag, b.registryOptions())
		if err != nil {
			b.log.Warn("reading the registry cache", "repo", repo, "err", err)
			continue
		}
		if !found {
			continue
		}
		var e cache.Entry
		if err := json.Unmarshal(data, &e); err != nil || e.Key != key || (e.Layer == nil) != (layer == nil) {
			b.log.Warn("ignoring a malformed registry cache entry", "repo", repo, "key", key)
			continue
		}
		return &hit{entry: &e, layer: layer, remote: ref}, nil
	}
	return nil, nil
}

// openBlob opens a committed layer blob kept under the state root.
func openBlob(dir string, l *cache.Layer) (*commit.Layer, error) {
	diffID, err := v1.NewHash(l.DiffID)
	if err != nil {
		return nil, err
	}
	dg, err := v1.NewHash(l.Digest)
	if err != nil {
		return nil, err
	}
	return commit.OpenLayer(filepath.Join(dir, dg.Hex), diffID, dg, l.Size, types.MediaType(l.MediaType))
}

// cacheRef splits a --cache-from/--cache-to REPOSITORY[:TAG] and names the
// tag of key in it: the key with '-' for ':' (tags cannot hold ':'),
// prefixed by TAG.
func cacheRef(ref, key string) (repo, tag string) {
	tag = strings.Replace(key, ":", "-", 1)
	repo = ref
	if i := strings.LastIndexByte(ref, ':'); i >= 0 && !strings.Contains(ref[i+1:], "/") {
		repo = ref[:i]
		tag = ref[i+1:] + "-" + tag
	}
	return repo, tag
}

func (b *builder) registryOptions() commit.PushOptions {
	return commit.PushOptions{Insecure: b.opts.InsecureRegistries}
}

// record stores a step's result under its key, locally and in the
// --cache-to repository.
func (b *builder) record(ctx context.Context, in *cache.Inputs, layer v1.Layer, info *LayerInfo) (*cache.Entry, error) {
	now := time.Now()
	e := &cache.Entry{Key: in.Key(), Inputs: *in, Created: now, LastUsed: now}
	if layer != nil {
		l, err := layerRecord(layer)
		if err != nil {
			return nil, err
		}
		if info != nil {
			l.Added, l.Modified, l.Deleted = info.Added, info.Modified, info.Deleted
		}
		e.Layer = l
	}
	if err := b.index.Put(e); err != nil {
		return nil, err
	}
	return e, b.cacheTo(ctx, e, layer)
}

// cacheTo pushes an entry to the --cache-to repositories.
func (b *builder) cacheTo(ctx context.Context, e *cache.Entry, layer v1.Layer) error {
	if len(b.opts.CacheTo) == 0 {
		return nil
	}
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	for _, ref := range b.opts.CacheTo {
		repo, tag := cacheRef(ref, e.Key)
		if err := commit.CachePut(ctx, repo, tag, data, layer, b.registryOptions()); err != nil {
			return fmt.Errorf("--cache-to %s: %w", ref, err)
		}
	}
	return nil
}

func layerRecord(l v1.Layer) (*cache.Layer, error) {
	diffID, err := l.DiffID()
	if err != nil {
		return nil, err
	}
	dg, err := l.Digest()
	if err != nil {
		return nil, err
	}
	size, err := l.Size()
	if err != nil {
		return nil, err
	}
	mt, err := l.MediaType()
	if err != nil {
		return nil, err
	}
	return &cache.Layer{DiffID: diffID.String(), Digest: dg.String(), Size: size, MediaType: string(mt)}, nil
}

// cachedStep runs a run or copy step unless the cache has its result. It
// returns the step's layer (nil if it changed no file), what progress
// shows of it, and whether it came from the cache.
func (b *builder) cachedStep(ctx context.Context, res *stageResult, step *recipe.Step, ev Event) (v1.Layer, *LayerInfo, bool, error) {
	in, err := b.stepInputs(ctx, res, step)
	if err != nil {
		return nil, nil, false, err
	}
	key := in.Key()
	if !b.opts.NoCache {
		h, err := b.lookup(ctx, key)
		if err != nil {
			return nil, nil, false, err
		}
		if h != nil {
			if h.layer != nil {
				res.chain = append(res.chain, &chainLayer{diffID: h.entry.Layer.DiffID, layer: h.layer})
			}
			if err := b.cacheTo(ctx, h.entry, h.layer); err != nil {
				return nil, nil, false, err
			}
			var info *LayerInfo
			if l := h.entry.Layer; l != nil {
				info = &LayerInfo{Digest: l.Digest, DiffID: l.DiffID, Size: l.Size, Added: l.Added, Modified: l.Modified, Deleted: l.Deleted}
			}
			if h.remote != "" {
				e := ev
				e.Kind, e.Text = EventInfo, "cache hit in "+h.remote
				b.emit(e)
			}
			return h.layer, info, true, nil
		}
		e := ev
		e.Kind, e.Text = EventInfo, "cache miss: "+cache.Explain(in, b.index.Nearest(in.StepID))
		b.emit(e)
	}
	layer, info, err := b.fsStep(ctx, res, step, ev)
	if err != nil {
		return nil, nil, false, err
	}
	var l v1.Layer
	if layer != nil {
		l = layer
	}
	if _, err := b.record(ctx, in, l, info); err != nil {
		return nil, nil, false, fmt.Errorf("%s: recording the step in the cache: %w", stepPos(step.Pos), err)
	}
	return l, info, false, nil
}

// dryStep plans a run or copy step without running it.
func (b *builder) dryStep(ctx context.Context, res *stageResult, step *recipe.Step) error {
	p := PlanStep{Stage: res.stage.Name, Pos: stepPos(step.Pos), Action: step.Kind.String(), Text: describe(step), Will: "run"}
	defer func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.plan = append(b.plan, p)
	}()
	if res.unknown {
		p.Why = "an earlier step runs"
		return nil
	}
	if c := step.Copy; c != nil && c.From != nil && c.From.Kind == recipe.KindStage {
		src, err := b.waitStage(ctx, c.From.Stage)
		if err != nil {
			return err
		}
		if src.unknown {
			res.unknown = true
			p.Why = fmt.Sprintf("stage %q has steps that run", c.From.Ref)
			return nil
		}
	}
	in, err := b.stepInputs(ctx, res, step)
	if err != nil {
		return err
	}
	if !b.opts.NoCache {
		h, err := b.lookup(ctx, in.Key())
		if err != nil {
			return err
		}
		if h != nil {
			p.Will = "cached"
			if h.remote != "" {
				p.Will = "cached (" + h.remote + ")"
			}
			if h.layer != nil {
				res.chain = append(res.chain, &chainLayer{diffID: h.entry.Layer.DiffID, layer: h.layer})
			}
			return nil
		}
		p.Why = cache.Explain(in, b.index.Nearest(in.StepID))
	} else {
		p.Why = "--no-cache"
	}
	res.unknown = true
	return nil
}

// wouldPush lists what a build with these options pushes.
func (b *builder) wouldPush() []string {
	var out []string
	push := b.opts.Push
	for _, o := range b.opts.Outputs {
		if o.Type == OutputRegistry {
			push = true
		}
	}
	if push {
		out = append(out, b.opts.Tags...)
	}
	for _, repo := range b.opts.CacheTo {
		out = append(out, repo+" (cache entries of the steps that run or miss there)")
	}
	return out
}
