package imagediff

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// Index is one side of a comparison of multi-platform images: an image
// index, or a single image standing for the one platform it is for.
type Index struct {
	// Ref names the index as the user gave it; it is only shown.
	Ref string
	// Digest is the index's digest; "" for a single image.
	Digest string
	// Images are the index's images by platform ("linux/arm64/v8").
	Images map[string]Image
}

// IndexResult is what differs between two indexes: the platforms that
// only one has, then, for each platform both have, its images. Encoded
// as JSON (WriteJSON) it is the output of `strata diff --format json`
// when A or B is a multi-platform image.
type IndexResult struct {
	A IndexSide `json:"a"`
	B IndexSide `json:"b"`
	// Identical is true when the indexes have the same digest, or when
	// both have the same platforms, each with images found identical,
	// and neither is an index of another digest.
	Identical bool `json:"identical"`
	// OnlyInA and OnlyInB are the platforms of one side only, sorted.
	OnlyInA []string `json:"onlyInA"`
	OnlyInB []string `json:"onlyInB"`
	// Platforms compare the images of the platforms both sides have,
	// sorted by platform.
	Platforms []PlatformResult `json:"platforms"`
	// Note explains indexes that differ although every platform's image
	// is the same: in their annotations or encoding.
	Note string `json:"note,omitempty"`
}

// IndexSide names one of the two indexes.
type IndexSide struct {
	Ref string `json:"ref"`
	// Digest is the index's digest; absent for a single image.
	Digest string `json:"digest,omitempty"`
	// Platforms are its images' platforms, sorted.
	Platforms []string `json:"platforms"`
}

// PlatformResult is the comparison of the images of one platform.
type PlatformResult struct {
	Platform string  `json:"platform"`
	Result   *Result `json:"result"`
}

// noteIndexEncoding explains indexes whose images are all the same.
const noteIndexEncoding = "every platform's image is the same; the indexes differ in their annotations or encoding"

// CompareIndexes says what differs between indexes a and b: which
// platforms only one has, and, for each platform both have, what differs
// between its images (Compare).
func CompareIndexes(ctx context.Context, a, b Index) (*IndexResult, error) {
	r := &IndexResult{
		A:       IndexSide{Ref: a.Ref, Digest: a.Digest, Platforms: slices.Sorted(maps.Keys(a.Images))},
		B:       IndexSide{Ref: b.Ref, Digest: b.Digest, Platforms: slices.Sorted(maps.Keys(b.Images))},
		OnlyInA: []string{}, OnlyInB: []string{}, Platforms: []PlatformResult{},
	}
	if a.Digest != "" && a.Digest == b.Digest {
		r.Identical = true
		return r, nil
	}
	same := true
	for _, p := range r.A.Platforms {
		if _, ok := b.Images[p]; !ok {
			r.OnlyInA = append(r.OnlyInA, p)
			continue
		}
		res, err := Compare(ctx, a.Images[p], b.Images[p])
		if err != nil {
			return nil, fmt.Errorf("platform %s: %w", p, err)
		}
		same = same && res.Identical
		r.Platforms = append(r.Platforms, PlatformResult{Platform: p, Result: res})
	}
	for _, p := range r.B.Platforms {
		if _, ok := a.Images[p]; !ok {
			r.OnlyInB = append(r.OnlyInB, p)
		}
	}
	r.Identical = same && len(r.OnlyInA) == 0 && len(r.OnlyInB) == 0
	if r.Identical && a.Digest != b.Digest && (a.Digest != "" && b.Digest != "") {
		r.Identical, r.Note = false, noteIndexEncoding
	}
	return r, nil
}

// WriteJSON writes r as one indented JSON document.
func (r *IndexResult) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes r for a person: the platforms only one side has, then
// a line per platform whose images are the same and a block, indented,
// per platform whose images differ (as Result.WriteText writes it).
func (r *IndexResult) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	if r.Identical && len(r.Platforms) == 0 {
		fmt.Fprintf(bw, "identical: %s\n", short(r.A.Digest))
		return bw.Flush()
	}
	if len(r.OnlyInA) > 0 {
		fmt.Fprintf(bw, "platforms only in A: %s\n", strings.Join(r.OnlyInA, ", "))
	}
	if len(r.OnlyInB) > 0 {
		fmt.Fprintf(bw, "platforms only in B: %s\n", strings.Join(r.OnlyInB, ", "))
	}
	for _, p := range r.Platforms {
		var buf bytes.Buffer
		if err := p.Result.WriteText(&buf); err != nil {
			return err
		}
		if p.Result.Identical {
			fmt.Fprintf(bw, "platform %s: %s", p.Platform, buf.String())
			continue
		}
		fmt.Fprintf(bw, "platform %s:\n", p.Platform)
		for _, line := range strings.SplitAfter(strings.TrimSuffix(buf.String(), "\n"), "\n") {
			fmt.Fprintf(bw, "  %s", strings.TrimSuffix(line, "\n")+"\n")
		}
	}
	if r.Note != "" {
		fmt.Fprintf(bw, "index %s → %s (%s)\n", short(r.A.Digest), short(r.B.Digest), r.Note)
	}
	return bw.Flush()
}
