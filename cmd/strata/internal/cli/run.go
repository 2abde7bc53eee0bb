package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/stratabuild/strata/build"
	"github.com/stratabuild/strata/cmd/strata/internal/tty"
	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/recipe"
)

// BuildImage is the Builder that runs real builds: build.Build with its
// progress rendered on stderr — a live view on a terminal (--progress
// auto), else plain lines or JSON; none at all with --quiet, where a
// failure's error (a failed run's output tail included) is all stderr
// gets. It writes the metadata and iid files.
func BuildImage(ctx context.Context, req Request, r *recipe.Recipe, stderr io.Writer) (digest string, err error) {
	progress, done := func(build.Event) {}, func(error) {}
	if !req.Quiet {
		progress, done = renderer(stderr, req.Progress)
	}
	defer func() { done(outcome(ctx, err)) }()
	for _, w := range req.Warnings {
		progress(build.Event{Kind: build.EventInfo, Time: time.Now(), Text: w + " (warning)"})
	}
	log := slog.New(eventLog{emit: progress})
	if err := checkDests(req); err != nil {
		return "", err
	}
	// An older build's files must not outlive a failure of this one (a
	// script would deploy the digest they name), as buildx removes its
	// iidfile first.
	was := map[string]fs.FileInfo{} // what was removed: the new file gets its mode
	for _, f := range []string{req.MetadataFile, req.IIDFile} {
		if f == "" || req.Build.DryRun {
			continue
		}
		// The regular file a link leads to, not the link; not /dev/stdout
		// or a FIFO.
		fi, err := commit.RemoveStale(f)
		if err != nil {
			return "", fmt.Errorf("removing the last build's %s: %w", f, err)
		}
		was[f] = fi
	}
	res, err := build.Build(ctx, req.Build, r, build.Deps{Progress: progress, Log: log})
	if err != nil {
		return "", err
	}
	if req.Build.DryRun {
		return planText(res, req.Build), nil
	}
	if req.MetadataFile != "" {
		if err := writeMetadata(req.MetadataFile, res, was[req.MetadataFile]); err != nil {
			return "", err
		}
	}
	if req.IIDFile != "" {
		// As buildx writes it: the digest alone, no newline.
		if err := commit.WriteFileLike(req.IIDFile, []byte(res.Digest), was[req.IIDFile]); err != nil {
			return "", fmt.Errorf("writing the iid file: %w", err)
		}
	}
	progress(resultEvent(req, res.Digest))
	return res.Digest, nil
}

// checkDests returns an error if two of the files a build writes — the
// iid file, the metadata file, the outputs' dests — are one file, which
// the last written would silently replace (an iid file over the docker
// archive), or one is a file an OCI layout output writes.
func checkDests(req Request) error {
	var files []commit.NamedFile
	for _, f := range []commit.NamedFile{{What: "--iidfile", Path: req.IIDFile}, {What: "--metadata-file", Path: req.MetadataFile}} {
		if f.Path != "" {
			files = append(files, f)
		}
	}
	for _, out := range req.Build.Outputs {
		if out.Dest != "" {
			files = append(files, commit.NamedFile{What: "-o " + out.String(), Path: out.Dest, Layout: out.Type == commit.OutputOCI})
		}
	}
	return commit.CheckDistinctFiles(files)
}

// renderer picks how progress is shown; done ends a live view (its
// summary, whose header says how the build ended: done's argument),
// before anything else is printed.
func renderer(stderr io.Writer, format string) (progress func(build.Event), done func(error)) {
	f, _ := stderr.(*os.File)
	if w, ok := stderr.(interface{ File() *os.File }); ok {
		f = w.File()
	}
	if f != nil && (format == "" || format == "auto") && tty.IsTerminal(f) {
		v := tty.New(f, tty.Options{})
		return v.Event, v.Close
	}
	if format == "" || format == "auto" {
		format = "plain"
	}
	return newProgressWriter(stderr, format), func(error) {}
}

// outcome is how the build ended for the live view: err, or ctx's error
// (context.Canceled: CANCELED) if the build failed because ctx was
// canceled (^C), whatever error its steps then returned.
func outcome(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// eventLog is a slog handler whose records, warnings and worse, become
// info events ("warning: MSG (KEY: VALUE; …)"), shown as progress is.
type eventLog struct {
	emit  func(build.Event)
	attrs []slog.Attr
}

func (h eventLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h eventLog) Handle(_ context.Context, r slog.Record) error {
	var parts []string
	add := func(a slog.Attr) bool {
		parts = append(parts, a.Key+": "+a.Value.String())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	text := "warning: " + r.Message
	if r.Level >= slog.LevelError {
		text = "error: " + r.Message
	}
	if len(parts) > 0 {
		text += " (" + strings.Join(parts, "; ") + ")"
	}
	h.emit(build.Event{Kind: build.EventInfo, Time: r.Time, Text: text})
	return nil
}

func (h eventLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	h.attrs = append(slices.Clip(h.attrs), attrs...)
	return h
}

func (h eventLog) WithGroup(string) slog.Handler { return h }

// metadata is what --metadata-file holds: buildx's keys for the digests,
// so that scripts written for buildx read it, and the steps.
type metadata struct {
	ImageDigest string `json:"image.digest"`
	// ContainerImageDigest is buildx's name for the same digest.
	ContainerImageDigest string             `json:"containerimage.digest"`
	ConfigDigest         string             `json:"containerimage.config.digest,omitempty"`
	Phases               build.Phases       `json:"phases"`
	Steps                []build.StepResult `json:"steps"`
}

// writeMetadata writes the build's metadata as JSON.
func writeMetadata(path string, res *build.Result, was fs.FileInfo) error {
	data, err := json.MarshalIndent(metadata{ImageDigest: res.Digest, ContainerImageDigest: res.Digest,
		ConfigDigest: res.ConfigDigest, Phases: res.Phases, Steps: res.Steps}, "", "  ")
	if err != nil {
		return err
	}
	// As commit writes outputs: its parents made, through its links; a
	// regular file replaced atomically, /dev/stdout or a FIFO in place.
	if err := commit.WriteFileLike(path, append(data, '\n'), was); err != nil {
		return fmt.Errorf("writing metadata file: %w", err)
	}
	return nil
}

// planText renders a dry run's plan: a line per run or copy step, then
// what would be pushed.
func planText(res *build.Result, o build.Options) string {
	var b strings.Builder
	for _, s := range res.Stages {
		name := "stage " + s.Stage
		if s.Stage == "" {
			name = "image"
		}
		fmt.Fprintf(&b, "%s: from %s", name, s.Base)
		if s.Digest != "" {
			fmt.Fprintf(&b, " (%s)", s.Digest)
		}
		fmt.Fprintf(&b, ", %s\n", s.Platform)
	}
	for _, p := range res.Plan {
		stage := ""
		if p.Stage != "" {
			stage = p.Stage + " "
		}
		fmt.Fprintf(&b, "%s%s %s %s: %s", stage, p.Pos, p.Action, p.Text, p.Will)
		if p.Why != "" {
			fmt.Fprintf(&b, " (%s)", p.Why)
		}
		b.WriteString("\n")
	}
	for _, out := range o.Outputs {
		if out.Type == commit.OutputRegistry {
			for _, t := range o.Tags {
				fmt.Fprintf(&b, "would push %s\n", t)
			}
		}
	}
	for _, s := range o.CacheTo {
		fmt.Fprintf(&b, "would push %s (cache entries of the steps that run or miss there)\n", s)
	}
	return b.String()
}
