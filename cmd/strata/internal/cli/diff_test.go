package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stratabuild/strata/internal/imagediff"
)

// writeLayout writes images into a new OCI layout, tagged by their keys,
// and returns its directory.
func writeLayout(t *testing.T, images map[string]v1.Image) string {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for tag, img := range images {
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{ocispec.AnnotationRefName: tag})); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func randomImage(t *testing.T, platform string) v1.Image {
	t.Helper()
	img, err := random.Image(64, 2)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, _ = strings.Cut(platform, "/")
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestDiffExitCodes(t *testing.T) {
	one, two := randomImage(t, "linux/amd64"), randomImage(t, "linux/amd64")
	dir := writeLayout(t, map[string]v1.Image{"one": one, "two": two})
	ref := func(tag string) string { return "oci-layout://" + dir + ":" + tag }

	code, stdout, stderr := run(t, nil, "diff", ref("one"), ref("one"))
	if code != 0 || !strings.HasPrefix(stdout, "identical: sha256:") || stderr != "" {
		t.Errorf("diff of an image with itself: exit %d, stdout %q, stderr %q; want 0 and identical", code, stdout, stderr)
	}
	code, stdout, stderr = run(t, nil, "diff", ref("one"), ref("two"))
	if code != 1 || !strings.Contains(stdout, "layer 0 (sha256:") || stderr != "" {
		t.Errorf("diff of two images: exit %d, stdout %q, stderr %q; want 1 and the layers", code, stdout, stderr)
	}
	code, stdout, _ = run(t, nil, "diff", "--format", "json", ref("one"), ref("two"))
	var r imagediff.Result
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || code != 1 || r.Identical || len(r.Layers) != 2 {
		t.Errorf("diff --format json: exit %d, %v, result %+v", code, err, r)
	}
}

func TestDiffBadUsage(t *testing.T) {
	dir := writeLayout(t, map[string]v1.Image{"one": randomImage(t, "linux/amd64")})
	good := "oci-layout://" + dir + ":one"
	missing := filepath.Join(t.TempDir(), "nothing-here")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{good}, "diff takes two images, A and B, got 1"},
		{[]string{good, good, good}, "got 3"},
		{[]string{"--format", "yaml", good, good}, `--format: unknown format "yaml": want text or json`},
		{[]string{"--platform", "linux", good, good}, "--platform: bad platform"},
		{[]string{good, "oci-layout://" + missing}, missing},
		{[]string{good, "docker-archive://" + missing + ".tar"}, missing},
		{[]string{good, "oci-layout://" + dir + ":nope"}, `no image tagged "nope"`},
		{[]string{"Not A Reference!", good}, "Not A Reference!"},
	} {
		code, stdout, stderr := run(t, nil, append([]string{"diff"}, tt.args...)...)
		if code != ExitUsage || stdout != "" || !strings.Contains(stderr, tt.want) {
			t.Errorf("strata diff %s: exit %d, stdout %q, stderr %q; want %d and %q", strings.Join(tt.args, " "), code, stdout, stderr, ExitUsage, tt.want)
		}
	}
}

// TestDiffPlatform: --platform picks the image of a multi-platform index.
func TestDiffPlatform(t *testing.T) {
	amd, arm := randomImage(t, "linux/amd64"), randomImage(t, "linux/arm64")
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{ocispec.AnnotationRefName: "multi"})); err != nil {
		t.Fatal(err)
	}
	single := writeLayout(t, map[string]v1.Image{"arm": arm})
	multi, armOnly := "oci-layout://"+dir+":multi", "oci-layout://"+single+":arm"

	if code, stdout, stderr := run(t, nil, "diff", "--platform", "linux/arm64", multi, armOnly); code != 0 {
		t.Errorf("diff --platform linux/arm64: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := run(t, nil, "diff", "--platform", "linux/amd64", multi, armOnly); code != 1 || !strings.Contains(stdout, "architecture: amd64 → arm64") {
		t.Errorf("diff --platform linux/amd64: exit %d, want 1 naming the architecture\n%s%s", code, stdout, stderr)
	}
}

// writeIndexes writes multi-platform indexes into a new OCI layout,
// tagged by their keys; each maps platforms to images.
func writeIndexes(t *testing.T, indexes map[string]map[string]v1.Image) string {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for tag, images := range indexes {
		var adds []mutate.IndexAddendum
		for _, plat := range []string{"linux/amd64", "linux/arm64", "linux/s390x"} {
			if img, ok := images[plat]; ok {
				os, arch, _ := strings.Cut(plat, "/")
				adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: os, Architecture: arch}}})
			}
		}
		if err := p.AppendIndex(mutate.AppendManifests(empty.Index, adds...), layout.WithAnnotations(map[string]string{ocispec.AnnotationRefName: tag})); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestDiffIndexes: without --platform, two multi-platform images are
// compared whole — their platforms, then each platform's images — not
// just the host's image; any difference exits 1.
func TestDiffIndexes(t *testing.T) {
	amd, arm, arm2, s390 := randomImage(t, "linux/amd64"), randomImage(t, "linux/arm64"), randomImage(t, "linux/arm64"), randomImage(t, "linux/s390x")
	dir := writeIndexes(t, map[string]map[string]v1.Image{
		"base":        {"linux/amd64": amd, "linux/arm64": arm},
		"arm-differs": {"linux/amd64": amd, "linux/arm64": arm2},
		"more":        {"linux/amd64": amd, "linux/arm64": arm, "linux/s390x": s390},
	})
	single := writeLayout(t, map[string]v1.Image{"amd": amd})
	ref := func(tag string) string { return "oci-layout://" + dir + ":" + tag }

	code, stdout, stderr := run(t, nil, "diff", ref("base"), ref("base"))
	if code != 0 || !strings.HasPrefix(stdout, "identical: sha256:") {
		t.Errorf("an index with itself: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = run(t, nil, "diff", ref("base"), ref("arm-differs"))
	if code != 1 || !strings.Contains(stdout, "platform linux/amd64: identical: sha256:") ||
		!strings.Contains(stdout, "platform linux/arm64:\n  layer 0 (sha256:") {
		t.Errorf("indexes whose arm64 images differ: exit %d, want 1 naming linux/arm64\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = run(t, nil, "diff", ref("base"), ref("more"))
	if code != 1 || !strings.Contains(stdout, "platforms only in B: linux/s390x\n") {
		t.Errorf("indexes with other platforms: exit %d, want 1 naming linux/s390x\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = run(t, nil, "diff", ref("base"), "oci-layout://"+single+":amd")
	if code != 1 || !strings.Contains(stdout, "platforms only in A: linux/arm64\n") || !strings.Contains(stdout, "platform linux/amd64: identical") {
		t.Errorf("an index and a single image: exit %d, want 1 naming linux/arm64\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = run(t, nil, "diff", "--format", "json", ref("base"), ref("more"))
	var r imagediff.IndexResult
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || code != 1 || r.Identical ||
		strings.Join(r.OnlyInB, ",") != "linux/s390x" || len(r.Platforms) != 2 || !r.Platforms[1].Result.Identical {
		t.Errorf("diff --format json of indexes: exit %d, %v, result %+v", code, err, r)
	}
}

// TestDiffIndexEntriesWithoutPlatform: an index whose entries name no
// platform (older tools write them so) is compared by each image's
// config platform, as the pull reads it, not called the same for
// having no platforms.
func TestDiffIndexEntriesWithoutPlatform(t *testing.T) {
	amd, arm, arm2 := randomImage(t, "linux/amd64"), randomImage(t, "linux/arm64"), randomImage(t, "linux/arm64")
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for tag, images := range map[string][]v1.Image{"a": {amd, arm}, "b": {amd, arm2}} {
		var adds []mutate.IndexAddendum
		for _, img := range images {
			adds = append(adds, mutate.IndexAddendum{Add: img})
		}
		if err := p.AppendIndex(mutate.AppendManifests(empty.Index, adds...), layout.WithAnnotations(map[string]string{ocispec.AnnotationRefName: tag})); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr := run(t, nil, "diff", "oci-layout://"+dir+":a", "oci-layout://"+dir+":b")
	if code != 1 || !strings.Contains(stdout, "platform linux/amd64: identical: sha256:") ||
		!strings.Contains(stdout, "platform linux/arm64:\n  layer 0 (sha256:") {
		t.Errorf("indexes without platforms whose arm64 images differ: exit %d, want 1 naming linux/arm64\n%s%s", code, stdout, stderr)
	}
}

// TestDiffPlatformWarns: --platform naming a platform a single image is
// not for compares it all the same, and says so.
func TestDiffPlatformWarns(t *testing.T) {
	dir := writeLayout(t, map[string]v1.Image{"one": randomImage(t, "linux/amd64")})
	ref := "oci-layout://" + dir + ":one"
	code, stdout, stderr := run(t, nil, "diff", "--platform", "linux/arm64", ref, ref)
	if code != 0 || !strings.Contains(stderr, ref+" is for linux/amd64, and has no image for --platform linux/arm64: compared as it is (warning)") {
		t.Errorf("exit %d, want 0 and a warning\n%s%s", code, stdout, stderr)
	}
	if code, _, stderr := run(t, nil, "diff", "--platform", "linux/amd64", ref, ref); code != 0 || stderr != "" {
		t.Errorf("the image's own platform: exit %d, stderr %q", code, stderr)
	}
}

// TestPlatformKeyNormalises: an index entry for arm naming no variant is
// linux/arm/v7's, as pulling takes it, and arm64/v8 is arm64's: diff
// does not report the same image under two platforms.
func TestPlatformKeyNormalises(t *testing.T) {
	for _, c := range []struct {
		p    v1.Platform
		want string
	}{
		{v1.Platform{OS: "linux", Architecture: "arm"}, "linux/arm/v7"},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, "linux/arm/v7"},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, "linux/arm/v6"},
		{v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, "linux/arm64"},
	} {
		if got := platformKey(c.p); got != c.want {
			t.Errorf("platformKey(%v) = %s, want %s", c.p, got, c.want)
		}
	}
}

// sameDiffIDImage is an image of one gzip layer of content, compressed at
// level, whose config claims diffID (the content's own when empty).
func sameDiffIDImage(t *testing.T, content []byte, level int, diffID v1.Hash) v1.Image {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(content)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(level))
	if err != nil {
		t.Fatal(err)
	}
	if diffID != (v1.Hash{}) {
		l = claimingLayer{l, diffID}
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), l)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// claimingLayer is a layer whose config entry claims diffID, whatever its
// content.
type claimingLayer struct {
	v1.Layer
	diffID v1.Hash
}

func (l claimingLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }

// oneFileTar is a tar of one file a holding body.
func oneFileTar(t *testing.T, body string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "a", Mode: 0o644, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(tw, body); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDiffSameDiffIDOtherBlobs: a layer whose two blobs claim one diffID
// is read on both sides before it is called the same. The same tar at two
// gzip levels is "same content"; a blob holding other files than the
// diffID it claims, or a blob missing from its layout, is an error naming
// the image and the layer (exit 2).
func TestDiffSameDiffIDOtherBlobs(t *testing.T) {
	content := oneFileTar(t, "hello\n")
	ok := sameDiffIDImage(t, content, gzip.DefaultCompression, v1.Hash{})
	cfg, err := ok.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	claimed := cfg.RootFS.DiffIDs[0]
	dir := writeLayout(t, map[string]v1.Image{
		"ok":      ok,
		"relevel": sameDiffIDImage(t, content, gzip.BestSpeed, v1.Hash{}),
		"forged":  sameDiffIDImage(t, oneFileTar(t, "EVIL\n"), gzip.DefaultCompression, claimed),
	})
	ref := func(tag string) string { return "oci-layout://" + dir + ":" + tag }

	code, stdout, stderr := run(t, nil, "diff", ref("ok"), ref("relevel"))
	if code != 1 || !strings.Contains(stdout, "layer 0: same content, blob ") || stderr != "" {
		t.Errorf("diff of one tar at two gzip levels: exit %d, stdout %q, stderr %q; want 1 and same content", code, stdout, stderr)
	}
	code, stdout, stderr = run(t, nil, "diff", ref("ok"), ref("forged"))
	if code != ExitUsage || stdout != "" || !strings.Contains(stderr, "layer 0 ("+claimed.String()+") of "+ref("forged")+": ") ||
		!strings.Contains(stderr, "corrupt or forged") {
		t.Errorf("diff of a forged layer: exit %d, stdout %q, stderr %q; want %d naming layer 0 of the forged image", code, stdout, stderr, ExitUsage)
	}

	// The gzip-level image alone in a layout, its layer blob removed.
	relevel := sameDiffIDImage(t, content, gzip.BestSpeed, v1.Hash{})
	lonely := writeLayout(t, map[string]v1.Image{"relevel": relevel})
	layers, err := relevel.Layers()
	if err != nil {
		t.Fatal(err)
	}
	blob, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(lonely, "blobs", blob.Algorithm, blob.Hex)); err != nil {
		t.Fatal(err)
	}
	missing := "oci-layout://" + lonely + ":relevel"
	code, stdout, stderr = run(t, nil, "diff", ref("ok"), missing)
	if code != ExitUsage || stdout != "" || !strings.Contains(stderr, "layer 0 ("+claimed.String()+") of "+missing+": its blob "+blob.String()+" is missing") {
		t.Errorf("diff with a missing blob: exit %d, stdout %q, stderr %q; want %d naming the missing blob", code, stdout, stderr, ExitUsage)
	}
}
