package commit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// OutputType is where an image is written.
type OutputType string

// The output types (-o type=…; --push is type=registry, --load type=daemon).
const (
	OutputOCI      OutputType = "oci"      // an OCI image layout directory (Dest)
	OutputDocker   OutputType = "docker"   // a `docker load` tarball (Dest)
	OutputRegistry OutputType = "registry" // pushed to the registry of every tag
	OutputDaemon   OutputType = "daemon"   // loaded into the docker daemon
)

// Output is one destination of an image.
type Output struct {
	Type OutputType
	Dest string // the directory (oci) or file (docker); "" otherwise
}

// String returns the output as written on the command line.
func (o Output) String() string {
	switch o.Type {
	case OutputDaemon:
		return "the docker daemon"
	case OutputRegistry:
		return "type=registry"
	}
	if o.Type == OutputOCI && strings.HasSuffix(strings.TrimSuffix(o.Dest, "/"), ".tar") {
		return "type=oci,dest=" + o.Dest + ",tar=false" // a directory, as buildx would take it
	}
	return "type=" + string(o.Type) + ",dest=" + o.Dest
}

// layoutRank is 1 for an OCI layout, which Write writes first, else 0.
func (o Output) layoutRank() int {
	if o.Type == OutputOCI {
		return 1
	}
	return 0
}

// WriteOptions say how Write names and moves an image.
type WriteOptions struct {
	// Tags name the image in every output; registry outputs push to them.
	Tags     []name.Tag
	Registry RegistryOptions
	// Blobs is a directory of layer blobs (SaveBlob, WriteLayer) that
	// files and the daemon read instead of a registry.
	Blobs string
	// Done is told each output written and how long it took; nil: nobody.
	Done func(out Output, took time.Duration)
}

// Write writes img to every output. Files and the daemon get the image
// with its layers saved to and read from Blobs; pushes get it as it is,
// so that layers of registry bases can be mounted across repositories.
func Write(ctx context.Context, img v1.Image, outs []Output, o WriteOptions) error {
	local := img
	if o.Blobs != "" && slices.ContainsFunc(outs, func(out Output) bool { return out.Type != OutputRegistry }) {
		// Every layer is read anyway: keep it under Blobs, which checks
		// a base layer's content against the diffID its config claims.
		if err := saveBlobs(ctx, img, o.Blobs); err != nil {
			return err
		}
		local = WithLocalBlobs(img, o.Blobs)
	}
	tags := tagNames(o.Tags)
	// Layouts first: an archive written into a layout's dir (-o
	// type=docker,dest=out/img.tar -o type=oci,dest=out) would make it a
	// dir that is no layout, whichever order the flags came in.
	outs = slices.Clone(outs)
	slices.SortStableFunc(outs, func(a, b Output) int { return b.layoutRank() - a.layoutRank() })
	for _, out := range outs {
		start := time.Now()
		var err error
		switch out.Type {
		case OutputOCI:
			err = WriteOCILayout(ctx, out.Dest, local, tags)
		case OutputDocker:
			err = WriteDockerArchive(ctx, out.Dest, local, tags)
		case OutputRegistry:
			if len(o.Tags) == 0 {
				err = errors.New("no --tag names where to push")
			} else {
				_, err = Push(ctx, img, o.Tags, o.Registry)
			}
		case OutputDaemon:
			err = Load(ctx, local, tags)
		default:
			err = fmt.Errorf("unknown output type %q", out.Type)
		}
		if err != nil && out.Type == OutputRegistry {
			return fmt.Errorf("pushing: %w", err) // a registry error names the reference
		}
		if err != nil {
			return fmt.Errorf("writing to %s: %w", out, err)
		}
		if o.Done != nil {
			o.Done(out, time.Since(start))
		}
	}
	return nil
}

// saveBlobs saves every layer of img to dir (see SaveBlob).
func saveBlobs(ctx context.Context, img v1.Image, dir string) error {
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range ls {
		if _, err := SaveBlob(ctx, l, dir); err != nil {
			dg, _ := l.Digest()
			return fmt.Errorf("layer %s: %w", dg, err)
		}
	}
	return nil
}

// CheckOutputs reports every output that cannot be written, writing
// nothing: call it before a build, so that a bad destination is found
// before any step runs. For --load, with ping, it asks the docker daemon
// (CheckDaemon): not for a dry run, which writes nothing.
func CheckOutputs(ctx context.Context, outs []Output, ping bool) error {
	var errs []error
	for _, out := range outs {
		var err error
		switch {
		case out.Dest == "-" && out.Type == OutputOCI:
			// buildx's "-" is stdout, for its tar outputs.
			err = errors.New("an OCI layout is a directory, which cannot go to stdout (dest=-): give a directory, or a docker archive with type=docker,dest=FILE")
		case out.Dest == "-" && out.Type == OutputDocker:
			err = errors.New("strata's stdout carries the image digest, so the archive cannot go there (dest=-): give a file, or dest=/dev/stdout to write it before the digest")
		case out.Type == OutputOCI:
			err = CheckOCIDest(out.Dest)
		case out.Type == OutputDocker:
			err = CheckDockerDest(out.Dest)
		case out.Type == OutputDaemon:
			if !ping {
				continue
			}
			if err := CheckDaemon(ctx); err != nil {
				errs = append(errs, fmt.Errorf("--load: %w", err))
			}
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("-o %s: %w", out, err))
		}
	}
	return errors.Join(errs...)
}

// NamedFile is a file or directory that an output or a flag writes.
type NamedFile struct {
	// What names it for an error: "--iidfile", "-o type=docker,dest=x".
	What string
	Path string
	// Layout: Path is an OCI layout's directory, whose index.json,
	// oci-layout and blobs the output writes.
	Layout bool
}

// CheckDistinctFiles returns an error for every two of files that are
// one: the same path once made absolute, cleaned and its links resolved,
// or one file by two names (a hard link). The second written would
// silently replace the first. Devices, FIFOs and /dev/stdout, written in
// place, may be named twice. It also refuses, for each OCI layout among
// files, another layout inside its directory and a file that would
// overwrite its index.json, oci-layout or blobs.
func CheckDistinctFiles(files []NamedFile) error {
	var prev []resolvedFile
	var errs []error
	for _, f := range files {
		d, err := resolveDest(f.Path)
		if err != nil || d.inPlace {
			continue // CheckFileDest reports what cannot be resolved
		}
		key, err := filepath.Abs(d.path)
		if err != nil {
			continue
		}
		s := resolvedFile{NamedFile: f, key: filepath.Clean(key), fi: d.fi}
		for _, p := range prev {
			if p.key == s.key || p.fi != nil && s.fi != nil && os.SameFile(p.fi, s.fi) {
				errs = append(errs, fmt.Errorf("%s and %s name the same file %s: give each its own", p.What, s.What, f.Path))
				break
			}
		}
		prev = append(prev, s)
	}
	for _, l := range prev {
		if !l.Layout {
			continue
		}
		for _, f := range prev {
			rel, err := filepath.Rel(l.key, f.key)
			if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
				continue // not inside l
			}
			switch name, _, _ := strings.Cut(rel, string(filepath.Separator)); {
			case f.Layout:
				errs = append(errs, fmt.Errorf("%s is inside the OCI layout %s writes: give each layout a directory of its own", f.What, l.What))
			case name == "index.json" || name == "oci-layout" || name == "blobs":
				errs = append(errs, fmt.Errorf("%s would overwrite the OCI layout's own %s that %s writes: give it a path outside %s", f.What, name, l.What, l.Path))
			}
		}
	}
	return errors.Join(errs...)
}

// resolvedFile is a NamedFile with its absolute path, links resolved
// (key), and what is there now (fi, nil if nothing).
type resolvedFile struct {
	NamedFile
	key string
	fi  fs.FileInfo
}
