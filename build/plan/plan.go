package plan

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stratabuild/strata/build/cache"
	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/fscopy"
	"github.com/stratabuild/strata/recipe"
)

// Plan is a build resolved before anything runs: the stages the target
// needs, each with its typed base and platform, and every step with the
// config state it runs in, its resolved paths and what of its cache key
// can be known up front. Nothing downstream parses a string again.
type Plan struct {
	Stages []*Stage // dependency order, the target last
	Image  recipe.Image
	// Ignore is the build context's ignore file (nil: none).
	Ignore *fscopy.Ignore
	// Epoch is the build epoch: the image's created time, every new
	// history entry's, and the most any layer entry's mtime may be; nil
	// with --timestamp now. EpochFrom says where it came from.
	Epoch     *time.Time
	EpochFrom string
	// Warnings are about the recipe as the bases make it, for the user
	// (see bareWarnings).
	Warnings []string
	byIdx    map[int]*Stage
}

// Stage is a planned stage.
type Stage struct {
	Recipe *recipe.Stage // expanded: no unresolved ${NAME} left
	// Platform is what the stage builds for; PlatformSet says whether the
	// recipe or the options chose it (else it is the host's, and the
	// image keeps its base's).
	Platform    v1.Platform
	PlatformSet bool
	// Base is the base image (scratch: an empty one); nil when the stage
	// continues another stage, BaseStage.
	Base       v1.Image
	BaseStage  int
	BaseDigest string // of the image the stage (or the one it continues) starts from; "" for scratch
	// Epoch is what the stage's layers are made with (see epochOf):
	// nil with --timestamp now.
	Epoch *time.Time
	Steps []*Step
	Final State // after the last step: the image config's
	// fingerprint is Fingerprint's, made once.
	fingerprint string
}

// Step is a planned step.
type Step struct {
	Recipe *recipe.Step
	Pos    string // FILE:LINE
	Text   string // what progress shows
	State  State  // before the step
	// Dest is a copy step's absolute destination (a trailing "/" kept);
	// Mounts a run step's mounts with absolute targets.
	Dest   string
	Mounts []recipe.Mount
	// From is a copy's source stage or image; nil for the build context.
	From  *CopySource
	Epoch *time.Time        // its stage's
	Def   cache.Def         // the step's part of its cache key
	Files map[string]string // a context copy's inputs and their digests
	Seen  cache.Seen        // and their lstat before they were hashed
}

// CopySource is where a copy step reads: a stage, or an image.
type CopySource struct {
	Stage  int // a stage index, or -1
	Image  v1.Image
	Digest string
	Ref    string // as the recipe names it
}

// Options are the build options a plan depends on.
type Options struct {
	Target    string
	Platform  *v1.Platform // nil: the host's
	Registry  commit.RegistryOptions
	Secrets   map[string][]byte // by id; only the ids are checked
	NoSecrets bool              // do not check secrets (validate)
	// NoEmulation leaves out the check that this machine can run the
	// run steps of a foreign platform (validate: a fact of the machine,
	// not of the recipe).
	NoEmulation bool
	// Epoch is the build epoch the user gives (SOURCE_DATE_EPOCH, or
	// --timestamp UNIX when EpochFromFlag); Now is --timestamp now. With
	// neither, the plan derives the epoch from the inputs (see epoch).
	Epoch         *time.Time
	EpochFromFlag bool
	Now           bool
	// Sums are the digests of the context's files remembered from earlier
	// builds; nil: every file a copy takes is read.
	Sums *cache.Sums
	// StateRoot is the build's state dir: inside the build context, it
	// is left out of the context's copies and their keys.
	StateRoot string
}

// below returns dir's path relative to context if dir is context or
// below it (both resolved: links, relative paths).
func below(context, dir string) (string, bool) {
	if dir == "" {
		return "", false
	}
	resolve := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			p = a
		}
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		return p
	}
	rel, err := filepath.Rel(resolve(context), resolve(dir))
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

// StageByIndex returns the planned stage of recipe stage index i.
func (p *Plan) StageByIndex(i int) (*Stage, bool) {
	s, ok := p.byIdx[i]
	return s, ok
}

// planner resolves a recipe into a plan.
type planner struct {
	o       Options
	r       *recipe.Recipe
	pulls   *pulls
	ignore  *fscopy.Ignore
	defined map[string]bool // the names r defines (definedNames), once needed
	envs    map[string]bool // the names r's env sets (envNames), with defined
	// warnings are the warnings of the plan being made, as its steps are
	// planned; plan adds them to its Plan's.
	warnings []string
}

// pulls are the images a build has pulled, by source and platform; the
// plans of a multi-platform build share them.
type pulls struct {
	mu   sync.Mutex
	imgs map[string]*pulled
}

// Make resolves r into a plan: the stages the target needs, their bases
// pulled (manifests and configs; layers are read later, if at all).
// Every problem is reported.
func Make(ctx context.Context, o Options, r *recipe.Recipe) (*Plan, error) {
	ps, err := MakeAll(ctx, o, []Target{{Recipe: r, Platform: o.Platform}})
	if err != nil {
		return nil, err
	}
	return ps[0], nil
}

// Target is one platform of a build: the recipe as loaded for it (its
// TARGET* args), and the platform (nil: the host's).
type Target struct {
	Recipe   *recipe.Recipe
	Platform *v1.Platform
}

// MakeAll plans a build for every target. Each plan has its own epoch,
// from the bases of the stages its target needs (unless the options give
// one), so that a platform's image is the same whichever other platforms
// are built with it; the plans share every image each pulls.
func MakeAll(ctx context.Context, o Options, targets []Target) ([]*Plan, error) {
	shared := &pulls{imgs: map[string]*pulled{}}
	ignore, err := fscopy.LoadIgnore(targets[0].Recipe.Context)
	if err != nil {
		return nil, err
	}
	if rel, ok := below(targets[0].Recipe.Context, o.StateRoot); ok {
		ignore = ignore.Without(rel)
	}
	pls := make([]*planner, len(targets))
	stages := make([][]*recipe.Stage, len(targets))
	epochs := make([]*time.Time, len(targets))
	froms := make([]string, len(targets))
	for i, t := range targets {
		po := o
		po.Platform = t.Platform
		pls[i] = &planner{o: po, r: t.Recipe, pulls: shared, ignore: ignore}
		if stages[i], err = t.Recipe.Needed(o.Target); err != nil {
			return nil, err
		}
		if epochs[i], froms[i], err = pls[i].epoch(ctx, stages[i]); err != nil {
			return nil, err
		}
	}
	plans := make([]*Plan, len(targets))
	var errs []error
	for i, pl := range pls {
		p, err := pl.plan(ctx, stages[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.Epoch, p.EpochFrom = epochs[i], froms[i]
		if p, err = pl.adopted(ctx, p, targets[i]); err != nil {
			errs = append(errs, err)
			continue
		}
		plans[i] = p
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, p := range plans {
		if err := p.checkTarget(targets[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if o.NoEmulation {
		return plans, nil
	}
	return plans, checkEmulation(plans)
}

// Targets are the targets of a build of r for platforms: one per
// platform, the recipe loaded for it; none given, the recipe's
// platforms:, else the host's.
func Targets(r *recipe.Recipe, platforms []v1.Platform) ([]Target, error) {
	if len(platforms) == 0 {
		for _, p := range r.Platforms {
			platforms = append(platforms, v1.Platform{OS: p.OS, Architecture: p.Arch, Variant: p.Variant})
		}
	}
	if len(platforms) == 0 {
		return []Target{{Recipe: r}}, nil
	}
	var out []Target
	for _, p := range platforms {
		rp, err := r.ForPlatform(recipe.Platform{OS: p.OS, Arch: p.Architecture, Variant: p.Variant})
		if err != nil {
			return nil, err
		}
		out = append(out, Target{Recipe: rp, Platform: &p})
	}
	return out, nil
}

// adopted plans again a target no platform was asked for (the host's)
// whose image's stage took its base's other platform (an arm64-only base
// on an amd64 host): with the TARGET* args of the platform it builds for,
// so that ${TARGETARCH} names the image's architecture.
func (pl *planner) adopted(ctx context.Context, p *Plan, t Target) (*Plan, error) {
	final := p.Stages[len(p.Stages)-1]
	if t.Platform != nil || final.PlatformSet || samePlatform(final.Platform, hostPlatform()) {
		return p, nil
	}
	r, err := t.Recipe.ForPlatform(recipe.Platform{OS: final.Platform.OS, Arch: final.Platform.Architecture, Variant: final.Platform.Variant})
	if err != nil {
		return nil, err
	}
	stages, err := r.Needed(pl.o.Target)
	if err != nil {
		return nil, err
	}
	again := *pl
	again.r = r
	q, err := again.plan(ctx, stages)
	if err != nil {
		return nil, err
	}
	q.Epoch, q.EpochFrom = p.Epoch, p.EpochFrom
	return q, nil
}

func hostPlatform() v1.Platform { return v1.Platform{OS: "linux", Architecture: runtime.GOARCH} }

// checkTarget refuses a plan whose image would be labelled t's platform
// but built for another: its stage pins one (platform:, or a stage it
// continues does) that is not t's.
func (p *Plan) checkTarget(t Target) error {
	if t.Platform == nil {
		return nil
	}
	final := p.Stages[len(p.Stages)-1]
	if samePlatform(final.Platform, *t.Platform) {
		return nil
	}
	// At the pin: the stage's own platform:, else that of the stage it
	// continues, and so on.
	pos := final.Recipe.Pos
	for sp, ok := final, true; ok; sp, ok = p.StageByIndex(sp.BaseStage) {
		if sp.Recipe.PlatformPos.IsValid() {
			pos = sp.Recipe.PlatformPos
			break
		}
		if sp.BaseStage < 0 {
			break
		}
	}
	// A recipe error (exit 2, as an invalid recipe), found before
	// anything runs.
	var l recipe.ErrorList
	l.Add(pos, "the image's stage is built for %s (its platform: or that of the stage it continues), but this build is for %s: drop the pin, or build for %s only",
		final.Platform.String(), t.Platform.String(), final.Platform.String())
	return l
}

// continuePlatform sets the platform of sp, which continues the stage
// prev: prev's, as docker's FROM stage takes the stage's (a stage on
// ${BUILDPLATFORM} continued to cross-compile for the target), unless the
// recipe pins sp to another, which is refused: prev's files are prev's
// platform's. (An image's stage that so takes another platform than the
// target's is refused by checkTarget.)
func (sp *Stage) continuePlatform(prev *Stage, st *recipe.Stage) error {
	if samePlatform(sp.Platform, prev.Platform) {
		return nil
	}
	if st.Platform.IsZero() {
		sp.Platform, sp.PlatformSet = prev.Platform, prev.PlatformSet
		return nil
	}
	return fmt.Errorf("%s: %s continues %s, which is built for %s, not %s: a stage built for another platform cannot be continued; copy from it instead",
		st.From.Pos, st.Label(), prev.Recipe.Label(), prev.Platform.String(), sp.Platform.String())
}

// samePlatform reports whether a and b are one platform; a variant only
// one of them names does not tell them apart.
func samePlatform(a, b v1.Platform) bool {
	return a.OS == b.OS && a.Architecture == b.Architecture && (a.Variant == "" || b.Variant == "" || a.Variant == b.Variant)
}

// plan resolves the stages into a plan.
func (pl *planner) plan(ctx context.Context, stages []*recipe.Stage) (*Plan, error) {
	p := &Plan{byIdx: map[int]*Stage{}, Image: pl.r.Image, Ignore: pl.ignore}
	pl.warnings = nil
	var errs []error
	for _, st := range stages {
		sp, err := pl.stage(ctx, st, p)
		if err != nil {
			errs = append(errs, err)
		}
		if sp != nil {
			p.Stages = append(p.Stages, sp)
			p.byIdx[st.Index] = sp
		}
	}
	if !pl.o.NoSecrets {
		errs = append(errs, pl.checkSecrets(p))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, sp := range p.Stages { // in dependency order: each made once
		p.Fingerprint(sp)
	}
	p.Warnings = append(p.Warnings, pl.warnings...)
	return p, nil
}

// stage resolves one stage; the stages it depends on are resolved.
func (pl *planner) stage(ctx context.Context, st *recipe.Stage, p *Plan) (*Stage, error) {
	sp := &Stage{BaseStage: -1}
	sp.Platform, sp.PlatformSet = pl.platform(st)
	var state State
	if st.From.Kind == recipe.KindStage {
		prev, ok := p.byIdx[st.From.Stage]
		if !ok {
			return nil, nil // that stage's own problems are reported
		}
		sp.BaseStage, sp.BaseDigest, state = st.From.Stage, prev.BaseDigest, prev.Final
		if err := sp.continuePlatform(prev, st); err != nil {
			return nil, err
		}
	} else {
		img, err := pl.image(ctx, st.From, sp.Platform, "the base")
		if err != nil {
			return nil, err
		}
		if err := sp.fitPlatform(img, st.From); err != nil {
			return nil, err
		}
		sp.Base = img
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("%s: reading the config of the base: %w", st.From.Pos, commit.RegistryError(st.From.Ref, err))
		}
		state = stateOf(cf.Config)
		if st.From.Kind != recipe.KindScratch {
			d, err := img.Digest()
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", st.From.Pos, st.From.Ref, err)
			}
			sp.BaseDigest = d.String()
		}
	}
	epoch, err := pl.epochOf(sp, st, p)
	if err != nil {
		return nil, err
	}
	sp.Epoch = epoch
	st, err = st.Expand(state.Environ())
	if err != nil {
		return nil, err
	}
	if pl.defined == nil {
		pl.defined, pl.envs = definedNames(pl.r), envNames(pl.r)
	}
	p.Warnings = append(p.Warnings, bareWarnings(st, state.Env, pl.defined)...)
	p.Warnings = append(p.Warnings, argWarnings(pl.r, st, state.Env, pl.envs)...)
	sp.Recipe = st
	state = state.withStage(st)
	var errs []error
	for _, step := range st.Steps {
		s, err := pl.step(ctx, sp, step, state)
		if err != nil {
			errs = append(errs, err)
		}
		sp.Steps = append(sp.Steps, s)
		state = state.apply(step)
	}
	sp.Final = state
	return sp, errors.Join(errs...)
}

// platform is the stage's platform, else --platform, else the host's;
// set says whether the recipe or the options chose it.
func (pl *planner) platform(st *recipe.Stage) (p v1.Platform, set bool) {
	switch {
	case !st.Platform.IsZero():
		return v1.Platform{OS: st.Platform.OS, Architecture: st.Platform.Arch, Variant: st.Platform.Variant}, true
	case pl.o.Platform != nil:
		return *pl.o.Platform, true
	}
	return hostPlatform(), false
}

// image pulls a base or copy source once per build and platform.
func (pl *planner) image(ctx context.Context, b recipe.Base, p v1.Platform, what string) (v1.Image, error) {
	src, err := Source(b, pl.o.Registry)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Pos, err)
	}
	id := src.String() + " " + p.String()
	pl.pulls.mu.Lock()
	pull, ok := pl.pulls.imgs[id]
	if !ok {
		pull = &pulled{}
		pl.pulls.imgs[id] = pull
	}
	pl.pulls.mu.Unlock()
	// Each image is pulled once, however many stages ask at once.
	pull.once.Do(func() {
		pull.img, pull.err = commit.Pull(ctx, src, commit.PullOptions{RegistryOptions: pl.o.Registry, Platform: &p})
		if pull.err != nil {
			pull.err = &PullError{Ref: b.Ref, Local: b.Kind != recipe.KindRegistry, Err: fmt.Errorf("%s: pulling %s: %w", b.Pos, what, pull.err)}
		} else if err := commit.VerifyImage(pull.img); err != nil {
			pull.err = fmt.Errorf("%s: %s %s: %w", b.Pos, what, b.Ref, err)
			if b.Kind == recipe.KindRegistry {
				// Its config read from the registry (which may have
				// lost it): a registry's problem, as a pull's, for
				// validate a warning.
				pull.err = &PullError{Ref: b.Ref, Err: pull.err}
			}
		}
	})
	return pull.img, pull.err
}

// pulled is an image pulled, or being pulled, once.
type pulled struct {
	once sync.Once
	img  v1.Image
	err  error
}

// step resolves one step in the state it runs in.
func (pl *planner) step(ctx context.Context, sp *Stage, step *recipe.Step, state State) (*Step, error) {
	s := &Step{Recipe: step, Pos: Pos(step.Pos), Text: step.Summary(), State: state}
	if step.Name != "" {
		s.Text = step.Name + ": " + s.Text
	}
	s.Def = cache.Def{Text: step.Summary(), Kind: step.Kind.String(), Platform: sp.Platform.String()}
	if s.Epoch = sp.Epoch; s.Epoch != nil {
		s.Def.Epoch = s.Epoch.UTC().Format(time.RFC3339)
	}
	switch step.Kind {
	case recipe.RunStep:
		r := step.Run
		s.Def.Argv, s.Def.Network = r.Argv(state.Shell), string(r.Network)
		for _, e := range r.Env {
			s.Def.Env = append(s.Def.Env, e.String())
		}
		for _, m := range r.Mounts {
			m.Target = strings.TrimSuffix(state.Abs(m.Target), "/")
			if m.DefaultID { // the cache at /src/.cache is one, however its target is written
				m.ID = m.Target
			}
			s.Mounts = append(s.Mounts, m)
			s.Def.Mounts = append(s.Def.Mounts, fmt.Sprintf("%s:%s:%s", m.Type, m.Target, m.ID))
		}
	case recipe.CopyStep:
		return s, pl.copyStep(ctx, sp, s, state)
	case recipe.FileStep:
		f := step.File
		s.Dest = state.Abs(f.Path)
		sum := sha256.Sum256([]byte(f.Content))
		s.Def.To, s.Def.Mode, s.Def.Content = s.Dest, fmt.Sprintf("%#o", uint32(f.Perm())), "sha256:"+hex.EncodeToString(sum[:])
		if f.Owner != nil {
			s.Def.Owner = f.Owner.String()
		}
	}
	return s, nil
}

// copyStep resolves a copy's destination, owner, mode and source: the
// context's files are hashed now, an image is pulled now.
func (pl *planner) copyStep(ctx context.Context, sp *Stage, s *Step, state State) error {
	c := s.Recipe.Copy
	s.Dest = state.Abs(c.To)
	s.Def.Sources, s.Def.To = c.Sources, s.Dest
	if c.Owner != nil {
		s.Def.Owner = c.Owner.String()
	}
	if c.Mode != nil {
		s.Def.Mode = fmt.Sprintf("%#o", uint32(c.Mode.Perm())|uint32(*c.Mode&(1<<23|1<<22|1<<20)))
	}
	switch {
	case c.From == nil:
		paths, left, err := fscopy.ContextInputs(pl.r.Context, pl.ignore, c.Sources, c.To)
		if err != nil {
			return at(s.Recipe.Pos.String(), err)
		}
		for _, l := range left {
			pl.warnings = append(pl.warnings, fmt.Sprintf("%s: the copy leaves out %s: sockets, FIFOs and devices of the build context are not copied", s.Recipe.Pos, l))
		}
		if s.Files, s.Seen, err = cache.HashSeen(pl.r.Context, paths, pl.o.Sums); err != nil {
			return fmt.Errorf("%s: hashing copy inputs: %w", s.Pos, err)
		}
	case c.From.Kind == recipe.KindStage:
		s.From = &CopySource{Stage: c.From.Stage, Ref: c.From.Ref}
	default:
		img, err := pl.image(ctx, *c.From, sp.Platform, "the image to copy from")
		if err != nil {
			return err
		}
		if cf, err := img.ConfigFile(); err == nil && cf.Architecture != "" && !commit.PlatformFits(*cf.Platform(), sp.Platform) {
			// A single-platform image: BuildKit takes it too, and warns of a FROM so.
			pl.warnings = append(pl.warnings, fmt.Sprintf("%s: the copy takes the files of %s, a %s image, into the %s image",
				s.Recipe.Pos, c.From.Ref, cf.Platform(), sp.Platform.String()))
		}
		d, err := img.Digest()
		if err != nil {
			return err
		}
		s.From = &CopySource{Stage: -1, Image: img, Digest: d.String(), Ref: c.From.Ref}
		s.Def.From = "image " + d.String()
	}
	return nil
}

// checkSecrets reports every secret a step needs and Options lack.
// They are recipe errors (an ErrorList): found before anything runs, a
// bad command line for this recipe.
func (pl *planner) checkSecrets(p *Plan) error {
	var errs recipe.ErrorList
	for _, sp := range p.Stages {
		for _, s := range sp.Steps {
			for _, m := range s.Mounts {
				if _, ok := pl.o.Secrets[m.ID]; m.Type == recipe.MountSecret && !ok {
					errs = append(errs, &recipe.Error{Pos: m.Pos, Msg: fmt.Sprintf("step %d needs secret %q: give it with --secret id=%s,src=FILE (or env=VAR)",
						s.Recipe.Index+1, m.ID, m.ID)})
				}
			}
		}
	}
	return errs.Err()
}

// Pos is a step's FILE:LINE, as messages and history show it.
func Pos(p recipe.Pos) string {
	return recipe.Pos{File: p.File, Line: p.Line}.String()
}

// fitPlatform checks the base against the stage's platform. A
// single-platform base comes back whatever platform is asked. One naming
// no variant, or one the platform runs (see commit.PlatformFits), fits.
// Another, when the recipe or --platform chose the platform, is refused
// (building on it would label its binaries wrongly); otherwise the stage
// builds for the base's platform.
func (sp *Stage) fitPlatform(img v1.Image, b recipe.Base) error {
	if b.Kind == recipe.KindScratch {
		return nil
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("%s: reading the config of the base: %w", b.Pos, commit.RegistryError(b.Ref, err))
	}
	got := cf.Platform()
	if got == nil || got.OS == "" || got.Architecture == "" {
		return nil // the base names none: nothing to check
	}
	p := sp.Platform
	if got.Variant == "" && got.OS == p.OS && got.Architecture == p.Architecture || commit.PlatformFits(*got, p) {
		return nil // the same, or a lower level (amd64/v2 runs amd64 code), as from an index
	}
	if !sp.PlatformSet {
		sp.Platform = *got
		return nil
	}
	// A base that does not exist for this build, as one an index lacks.
	return &PullError{Ref: b.Ref, Local: b.Kind != recipe.KindRegistry, Err: commit.NoImage(fmt.Errorf(
		"%s: the base %s is a %s image, not %s: build for %s, or use a base that is an index holding %s",
		b.Pos, b.Ref, got, p.String(), got, p.String()))}
}
