package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/stratabuild/strata/build/plan"
	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/imagediff"
	"github.com/stratabuild/strata/recipe"
)

// diffFlags holds the raw values of strata diff's flags.
type diffFlags struct {
	format, platform string
	insecure         []string
}

func newDiff() *cobra.Command {
	var f diffFlags
	cmd := &cobra.Command{
		Use:   "diff [flags] A B",
		Short: "Show what differs between two images; exit 0 same, 1 differ, 2 trouble",
		Long: `Show what differs between images A and B: the manifest and config fields,
then each layer, aligned by position: "same", or the paths added (+), removed (-)
or changed (~) with what changed (content, size, mode, owner, mtime, xattrs,
link target, type). A layer in the same blob on both sides is not downloaded;
one whose two blobs claim the same diffID is read on both sides, to check it.

A and B are any image reference strata accepts as a base: a registry reference
(docker.io/library assumed), oci-layout://DIR[:TAG|@sha256:…] or
docker-archive://FILE.

When A or B is a multi-platform image (an index) and no --platform is given,
the platforms each has are compared, then each platform's images; a single
image stands for the platform its config names. --platform compares only the
images for that platform, with a warning when a single image is for another.

Exit codes, as diff(1): 0 the images are the same; 1 they differ; 2 bad usage or
an image that cannot be read.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usageErr("diff takes two images, A and B, got %d (see %s --help)", len(args), cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDiff(cmd, f, args[0], args[1])
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVar(&f.format, "format", "text", "output `FORMAT`: text or json")
	fl.StringVar(&f.platform, "platform", "", "compare only the images for `OS/ARCH` (default: every platform of a multi-platform image)")
	fl.StringArrayVar(&f.insecure, "insecure-registry", nil, "reach registry `HOST` over plain HTTP (repeatable)")
	return cmd
}

func runDiff(cmd *cobra.Command, f diffFlags, refA, refB string) error {
	if f.format != "text" && f.format != "json" {
		return usageErr("--format: unknown format %q: want text or json", f.format)
	}
	o := commit.PullOptions{RegistryOptions: commit.RegistryOptions{Insecure: f.insecure}}
	if f.platform != "" {
		p, err := recipe.ParsePlatform(f.platform)
		if err != nil {
			return usageErr("--platform: %v", err)
		}
		o.Platform = &v1.Platform{OS: p.OS, Architecture: p.Arch, Variant: p.Variant}
	}
	ctx := cmd.Context()
	if o.Platform == nil {
		r, err := diffIndexes(ctx, refA, refB, o)
		if err != nil {
			return &exitError{code: ExitUsage, err: err}
		}
		if r != nil {
			return writeDiff(cmd, f.format, r, r.Identical)
		}
	}
	a, err := resolveImage(ctx, refA, o)
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	b, err := resolveImage(ctx, refB, o)
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	if o.Platform != nil {
		for _, side := range []imagediff.Image{a, b} {
			warnPlatform(cmd, side, *o.Platform)
		}
	}
	r, err := imagediff.Compare(ctx, a, b)
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	return writeDiff(cmd, f.format, r, r.Identical)
}

// diffResult is a comparison's result: an imagediff.Result or
// IndexResult.
type diffResult interface {
	WriteJSON(io.Writer) error
	WriteText(io.Writer) error
}

// writeDiff prints r in format; an error exiting 1 unless identical.
func writeDiff(cmd *cobra.Command, format string, r diffResult, identical bool) error {
	var err error
	if format == "json" {
		err = r.WriteJSON(cmd.OutOrStdout())
	} else {
		err = r.WriteText(cmd.OutOrStdout())
	}
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	if !identical {
		return &exitError{code: ExitBuildFailed, err: errDiffer, printed: true}
	}
	return nil
}

// diffIndexes compares A and B as indexes when either is one: their
// platforms, then each platform's images; a single image stands for the
// platform its config names. It returns nil when neither is an index.
func diffIndexes(ctx context.Context, refA, refB string, o commit.PullOptions) (*imagediff.IndexResult, error) {
	ia, err := openIndex(ctx, refA, o)
	if err != nil {
		return nil, err
	}
	ib, err := openIndex(ctx, refB, o)
	if err != nil || ia == nil && ib == nil {
		return nil, err
	}
	sides := []*imagediff.Index{ia, ib}
	for i, ref := range []string{refA, refB} {
		if sides[i] != nil {
			continue
		}
		img, err := resolveImage(ctx, ref, o)
		if err != nil {
			return nil, err
		}
		if sides[i], err = singleIndex(img); err != nil {
			return nil, err
		}
	}
	return imagediff.CompareIndexes(ctx, *sides[0], *sides[1])
}

// warnPlatform says when the image picked for --platform p is for
// another platform: a single image is compared whatever its platform.
func warnPlatform(cmd *cobra.Command, img imagediff.Image, p v1.Platform) {
	have, err := imagePlatform(img.Image)
	if err != nil || platformKey(have) == platformKey(p) {
		return
	}
	if have.OS == "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s names no platform, and has no image for --platform %s: compared as it is (warning)\n", img.Ref, platformKey(p))
		return
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s is for %s, and has no image for --platform %s: compared as it is (warning)\n", img.Ref, platformKey(have), platformKey(p))
}

// errDiffer is the "error" of images that differ: exit 1, nothing more
// printed.
var errDiffer = errors.New("the images differ")

// resolveImage turns a reference as the user typed it into an image: the
// one place strata diff calls commit.Pull.
func resolveImage(ctx context.Context, ref string, o commit.PullOptions) (imagediff.Image, error) {
	b, err := recipe.ParseBase(ref, ".")
	if err != nil {
		return imagediff.Image{}, err
	}
	src, err := plan.Source(b, o.RegistryOptions)
	if err != nil {
		return imagediff.Image{}, err
	}
	img, err := commit.Pull(ctx, src, o)
	if err != nil {
		return imagediff.Image{}, err
	}
	return imagediff.Image{Ref: ref, Image: img, NoManifest: src.Kind == commit.SourceArchive}, nil
}
