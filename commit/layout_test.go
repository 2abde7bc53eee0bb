package commit_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/owner"
	"github.com/stratabuild/strata/internal/testutil"
)

// layoutRefs reads dir with ggcr's layout package: each ref name (""
// for an unnamed entry) and its image digest. Every image must be whole.
func layoutRefs(t *testing.T, dir string) map[string]v1.Hash {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("reading layout %s: %v", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	refs := map[string]v1.Hash{}
	for _, d := range im.Manifests {
		name := d.Annotations["org.opencontainers.image.ref.name"]
		if _, dup := refs[name]; dup {
			t.Errorf("layout %s lists %q twice", dir, name)
		}
		refs[name] = d.Digest
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatalf("image %s (%s) of layout %s: %v", d.Digest, name, dir, err)
		}
		if err := validate.Image(img); err != nil {
			t.Errorf("image %s (%s) of layout %s is not whole: %v", d.Digest, name, dir, err)
		}
	}
	return refs
}

// skopeoLayoutDigest is the digest `skopeo inspect oci:DIR:TAG` reports.
func skopeoLayoutDigest(t *testing.T, dir, tag string) string {
	t.Helper()
	var inspect struct{ Digest string }
	out := run(t, nil, "skopeo", "inspect", "oci:"+dir+":"+tag)
	if err := json.Unmarshal([]byte(out), &inspect); err != nil {
		t.Fatalf("skopeo inspect output: %v\n%s", err, out)
	}
	return inspect.Digest
}

// tree lists every path under dir with its mode and content, to show
// that a refused write touched nothing.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		out[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOCIDestNonEmptyRefused: a directory that holds files and is not a
// layout, or a file, is refused with nothing touched: before, the layout
// replaced it whole and precious.txt was gone.
func TestOCIDestNonEmptyRefused(t *testing.T) {
	img := motdImage(t, "hello\n")
	parent := t.TempDir()
	data := filepath.Join(parent, "d")
	buildContext := filepath.Join(parent, "ctx")
	file := filepath.Join(parent, "file")
	noIndex := filepath.Join(parent, "noindex")
	badIndex := filepath.Join(parent, "badindex")
	for path, content := range map[string]string{
		filepath.Join(data, "precious.txt"):           "precious\n",
		filepath.Join(buildContext, "strata.yaml"):    "from: scratch\n",
		filepath.Join(buildContext, "src", "main.go"): "package main\n",
		file:                                  "not a dir\n",
		filepath.Join(noIndex, "oci-layout"):  `{"imageLayoutVersion": "1.0.0"}`,
		filepath.Join(noIndex, "README"):      "mine\n",
		filepath.Join(badIndex, "oci-layout"): `{"imageLayoutVersion": "1.0.0"}`,
		filepath.Join(badIndex, "index.json"): `{"schemaVersion": 2, "manifests": [`,
	} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	notLayout := " is not empty and is not an OCI layout; choose an empty or new directory, or an existing layout to add to"
	for _, tc := range []struct{ dest, want string }{
		{data, data + notLayout},
		{buildContext, buildContext + notLayout},
		{file, file + " is a regular file, not a directory; choose an empty or new directory, or an existing layout to add to"},
		{filepath.Join(file, "sub"), "cannot create " + filepath.Join(file, "sub") + ": " + file + " is a regular file, not a directory"},
		{noIndex, noIndex + " has an oci-layout file but no index.json; restore its index.json, or choose another directory"},
		{badIndex, filepath.Join(badIndex, "index.json") + " is not a valid OCI index (invalid JSON at byte 35); fix it, or choose another directory"},
	} {
		t.Run(filepath.Base(tc.dest), func(t *testing.T) {
			before := tree(t, parent)
			if err := commit.CheckOCIDest(tc.dest); err == nil || err.Error() != tc.want {
				t.Errorf("CheckOCIDest(%s) = %v, want %q", tc.dest, err, tc.want)
			}
			err := commit.WriteOCILayout(t.Context(), tc.dest, img, []string{"v1"})
			if want := "writing OCI layout " + tc.dest + ": " + tc.want; err == nil || err.Error() != want {
				t.Errorf("WriteOCILayout(%s) = %v, want %q", tc.dest, err, want)
			}
			if diff := cmp.Diff(before, tree(t, parent)); diff != "" {
				t.Errorf("a refused write changed files (-before +after):\n%s", diff)
			}
		})
	}
}

// An empty directory, a missing one and one under missing parents are
// fine, and a layout is written there.
func TestOCIDestEmptyOrMissing(t *testing.T) {
	img := motdImage(t, "hello\n")
	empty := t.TempDir()
	missing := filepath.Join(t.TempDir(), "a", "b", "layout")
	for _, dir := range []string{empty, missing} {
		if err := commit.CheckOCIDest(dir); err != nil {
			t.Errorf("CheckOCIDest(%s) = %v", dir, err)
		}
		if err := commit.WriteOCILayout(t.Context(), dir, img, []string{"v1"}); err != nil {
			t.Fatalf("WriteOCILayout(%s): %v", dir, err)
		}
		if diff := cmp.Diff(map[string]v1.Hash{"v1": digestOf(t, img)}, layoutRefs(t, dir)); diff != "" {
			t.Errorf("refs of %s (-want +got):\n%s", dir, diff)
		}
		if err := commit.CheckOCIDest(dir); err != nil {
			t.Errorf("CheckOCIDest(%s) of the layout written = %v", dir, err)
		}
	}
}

// TestOCILayoutKeepsOtherImages: writing -t example/x:v1 into a layout
// that skopeo filled with busybox:latest keeps busybox there; before,
// only the new image was left.
func TestOCILayoutKeepsOtherImages(t *testing.T) {
	requireTool(t, "skopeo", "skopeo")
	requireTool(t, "umoci", "umoci")
	dir := filepath.Join(t.TempDir(), "layout")
	run(t, nil, "skopeo", "copy", "oci:"+testutil.BusyboxLayout(t)+":"+testutil.BusyboxTag, "oci:"+dir+":busybox:latest")
	busybox := skopeoLayoutDigest(t, dir, "busybox:latest")
	// Something of the user's in the index that must survive.
	var index map[string]any
	raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		t.Fatal(err)
	}
	index["annotations"] = map[string]string{"org.example.owner": "me"}
	raw, _ = json.Marshal(index)
	if err := os.WriteFile(filepath.Join(dir, "index.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}

	img := motdImage(t, "hello\n")
	if err := commit.CheckOCIDest(dir); err != nil {
		t.Fatalf("CheckOCIDest(a skopeo layout) = %v", err)
	}
	if err := commit.WriteOCILayout(t.Context(), dir, img, []string{"example/x:v1"}); err != nil {
		t.Fatal(err)
	}
	busyboxDigest, err := v1.NewHash(busybox)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]v1.Hash{"busybox:latest": busyboxDigest, "example/x:v1": digestOf(t, img)}
	if diff := cmp.Diff(want, layoutRefs(t, dir)); diff != "" {
		t.Errorf("refs (ggcr) (-want +got):\n%s", diff)
	}
	for ref, d := range want {
		if got := skopeoLayoutDigest(t, dir, ref); got != d.String() {
			t.Errorf("skopeo inspect oci:DIR:%s digest = %s, want %s", ref, got, d)
		}
	}
	raw, err = os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"org.example.owner": "me"`) {
		t.Errorf("index.json lost its annotations:\n%s", raw)
	}
	for ref, file := range map[string]string{"example/x:v1": "etc/motd", "busybox:latest": "bin/busybox"} {
		bundle := filepath.Join(t.TempDir(), "bundle")
		run(t, nil, "umoci", "unpack", "--rootless", "--image", dir+":"+ref, bundle)
		if _, err := os.Lstat(filepath.Join(bundle, "rootfs", file)); err != nil {
			t.Errorf("umoci unpack %s: %v", ref, err)
		}
	}
}

// index.json, oci-layout and blobs are 0644, directories made 0755, even
// under a umask of 077; before, index.json and oci-layout were 0755.
func TestOCILayoutModes(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	img := motdImage(t, "hello\n")
	for _, dir := range []string{filepath.Join(t.TempDir(), "new"), t.TempDir()} {
		_, statErr := os.Stat(dir)
		existed := statErr == nil
		if err := commit.WriteOCILayout(t.Context(), dir, img, []string{"v1"}); err != nil {
			t.Fatal(err)
		}
		err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			want := os.FileMode(0o644)
			if fi.IsDir() {
				want = os.ModeDir | 0o755
			}
			if p == dir && existed {
				return nil // a directory the user made keeps its mode
			}
			if fi.Mode() != want {
				t.Errorf("%s has mode %v, want %v", p, fi.Mode(), want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestOCILayoutConcurrentWriters: builds writing to one layout at once
// all land, whether the layout exists or not yet.
func TestOCILayoutConcurrentWriters(t *testing.T) {
	const n = 6
	imgs := make([]v1.Image, n)
	want := map[string]v1.Hash{}
	for i := range imgs {
		imgs[i] = motdImage(t, fmt.Sprintf("image %d\n", i))
		want[fmt.Sprintf("v%d", i)] = digestOf(t, imgs[i])
	}
	for _, name := range []string{"new", "existing"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "layout")
			if name == "existing" {
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range imgs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = commit.WriteOCILayout(t.Context(), dir, imgs[i], []string{fmt.Sprintf("v%d", i)})
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("writer %d: %v", i, err)
				}
			}
			if diff := cmp.Diff(want, layoutRefs(t, dir)); diff != "" {
				t.Errorf("refs after %d concurrent writers (-want +got):\n%s", n, diff)
			}
			if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 1 {
				t.Errorf("%d entries beside the layout, want only the layout", len(entries))
			}
		})
	}
}

// deadPid returns the pid of a process that has exited.
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		t.Skipf("pid %d was reused already", pid)
	}
	return pid
}

// TestStaleTempsCleaned: temps a killed writer left (a dead pid) beside a
// docker archive or a layout, and inside the layout, are removed by the
// next write there; those of a live pid, or of a living pid namespace,
// are kept.
func TestStaleTempsCleaned(t *testing.T) {
	img := motdImage(t, "hello\n")
	dead, live := strconv.Itoa(deadPid(t)), strconv.Itoa(os.Getpid())
	_, ns, _ := strings.Cut(owner.ID(), ".")
	parent := t.TempDir()
	archive := filepath.Join(parent, "out.tar")
	layoutDir := filepath.Join(parent, "outdir")
	if err := commit.WriteOCILayout(t.Context(), layoutDir, img, []string{"old"}); err != nil {
		t.Fatal(err)
	}
	blobs := filepath.Join(layoutDir, "blobs", "sha256")
	stale := []string{
		filepath.Join(parent, ".out.tar.tmp-"+dead+"-123456"),
		filepath.Join(parent, ".outdir.tmp-"+dead+"-42/"),
		filepath.Join(layoutDir, ".index.json.tmp-"+dead+"-7"),
		filepath.Join(blobs, ".0123abcd.tmp-"+dead+"-8"),
		filepath.Join(parent, ".out.tar.tmp-"+dead+"."+ns+"-654321"), // its pid namespace named
	}
	kept := []string{
		filepath.Join(parent, ".out.tar.tmp-"+dead+"."+testutil.ForeignPIDNS(t)+"-654321"), // a living pid namespace's
		filepath.Join(parent, ".out.tar.tmp-"+live+"-123456"),
		filepath.Join(parent, ".outdir.tmp-"+live+"-42/"),
		filepath.Join(blobs, ".0123abcd.tmp-"+live+"-8"),
		filepath.Join(parent, ".other.tar.tmp-"+dead+"-1"), // another destination's
		filepath.Join(parent, ".out.tar.tmp-12345678"),     // not ours: no pid
	}
	for _, p := range append(slices.Clone(stale), kept...) {
		var err error
		if strings.HasSuffix(p, "/") {
			err = os.MkdirAll(filepath.Join(p, "blobs"), 0o755)
		} else {
			err = os.WriteFile(p, []byte("partial"), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := commit.WriteDockerArchive(t.Context(), archive, img, nil); err != nil {
		t.Fatal(err)
	}
	if err := commit.WriteOCILayout(t.Context(), layoutDir, img, []string{"new"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range stale {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("stale temp %s (dead pid) is still there", p)
		}
	}
	for _, p := range kept {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("temp %s was removed: %v", p, err)
		}
	}
}

func TestCheckDockerDest(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), dangling); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ dest, want string }{
		{filepath.Join(dir, "out.tar"), ""},
		{file, ""},
		{filepath.Join(dir, "new", "sub", "out.tar"), ""},
		{dir, dir + " is a directory; give the archive's file name, such as " + filepath.Join(dir, "image.tar")},
		// Written in place, as buildx writes through them.
		{"/dev/null", ""},
		{fifo, ""},
		// Its target is created.
		{dangling, ""},
		{filepath.Join(file, "out.tar"), "cannot create " + file + ": " + file + " is a regular file, not a directory"},
		{filepath.Join(dir, "slash.tar") + "/", filepath.Join(dir, "slash.tar") + "/ ends in /, so names a directory; give the archive's file name, such as " + filepath.Join(dir, "slash.tar", "image.tar")},
		// The system needs x to resolve x/.., which Clean would drop.
		{dir + "/x/../same2.tar", dir + "/x/../same2.tar goes through " + dir + "/x, which is not a directory"},
		{dir + "/file/../same2.tar", dir + "/file/../same2.tar goes through " + dir + "/file, which is not a directory"},
		{dir + "/x/./../same2.tar", dir + "/x/./../same2.tar goes through " + dir + "/x/., which is not a directory"},
		{dir + "/../" + filepath.Base(dir) + "/ok.tar", ""},
	} {
		err := commit.CheckDockerDest(tc.dest)
		if got := fmt.Sprint(err); tc.want == "" && err != nil || tc.want != "" && got != tc.want {
			t.Errorf("CheckDockerDest(%s) = %v, want %q", tc.dest, err, tc.want)
		}
	}
	// The writer writes a device in place, refuses what the check
	// refuses, and makes missing parents.
	img := motdImage(t, "hello\n")
	if err := commit.WriteDockerArchive(t.Context(), "/dev/null", img, nil); err != nil {
		t.Errorf("WriteDockerArchive(/dev/null) = %v", err)
	}
	if err := commit.WriteDockerArchive(t.Context(), dir+"/x/../same2.tar", img, nil); err == nil {
		t.Error("WriteDockerArchive(x/../same2.tar) succeeded with no x")
	}
	if fi, err := os.Stat("/dev/null"); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("/dev/null is no longer a device: %v %v", fi, err)
	}
	nested := filepath.Join(dir, "new", "sub", "out.tar")
	if err := commit.WriteDockerArchive(t.Context(), nested, img, nil); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(nested); err != nil || fi.Mode() != 0o644 {
		t.Errorf("archive under new parents: %v, %v; want a 0644 file", fi, err)
	}
}

// hangImage is an image whose layers give 1 KiB of their blob, then
// block: a writer of it stays in the middle of its write.
type hangImage struct{ v1.Image }

type hangLayer struct{ v1.Layer }

func (i hangImage) Layers() ([]v1.Layer, error) {
	ls, err := i.Image.Layers()
	for n, l := range ls {
		ls[n] = hangLayer{l}
	}
	return ls, err
}

func (l hangLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	block := make(chan struct{})
	return io.NopCloser(io.MultiReader(io.LimitReader(rc, 1024), readerFunc(func([]byte) (int, error) {
		<-block
		return 0, io.EOF
	}))), nil
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestKilledWriterTempsCleaned kills (SIGKILL) a child process in the
// middle of writing a docker archive and an OCI layout, then writes both
// again: the temps the child left are gone, the outputs are whole.
func TestKilledWriterTempsCleaned(t *testing.T) {
	if dest := os.Getenv("STRATA_TEST_HANG_WRITE"); dest != "" {
		img := hangImage{motdImage(t, "hello\n")}
		go func() { _ = commit.WriteDockerArchive(t.Context(), filepath.Join(dest, "out.tar"), img, nil) }()
		_ = commit.WriteOCILayout(t.Context(), filepath.Join(dest, "outdir"), img, []string{"v1"})
		t.Fatal("the write returned")
	}
	dest := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledWriterTempsCleaned$")
	// The child's own temp dirs, which its death leaves, go where this
	// test's cleanup removes them.
	cmd.Env = append(os.Environ(), "STRATA_TEST_HANG_WRITE="+dest, "TMPDIR="+t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for the child's temps: the archive's and the layout's dir.
	pid := strconv.Itoa(cmd.Process.Pid)
	var temps []string
	for range 200 {
		temps, _ = filepath.Glob(filepath.Join(dest, ".out*.tmp-"+pid+".*"))
		if len(temps) == 2 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if len(temps) != 2 {
		t.Fatalf("the child left %v, want a temp file and a temp dir", temps)
	}
	t.Logf("left by the killed writer: %v", temps)

	img := motdImage(t, "hello\n")
	if err := commit.WriteDockerArchive(t.Context(), filepath.Join(dest, "out.tar"), img, nil); err != nil {
		t.Fatal(err)
	}
	if err := commit.WriteOCILayout(t.Context(), filepath.Join(dest, "outdir"), img, []string{"v1"}); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dest)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"out.tar", "outdir"}, names); diff != "" {
		t.Errorf("entries after the next writes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]v1.Hash{"v1": digestOf(t, img)}, layoutRefs(t, filepath.Join(dest, "outdir"))); diff != "" {
		t.Errorf("layout refs (-want +got):\n%s", diff)
	}
}

// failImage is an image whose layers' blobs break after 1 KiB.
type failImage struct{ v1.Image }

type failLayer struct{ v1.Layer }

func (i failImage) Layers() ([]v1.Layer, error) {
	ls, err := i.Image.Layers()
	for n, l := range ls {
		ls[n] = failLayer{l}
	}
	return ls, err
}

func (l failLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	return io.NopCloser(io.MultiReader(io.LimitReader(rc, 1024), readerFunc(func([]byte) (int, error) {
		return 0, errors.New("the blob broke")
	}))), nil
}

// TestOCILayoutFailedFirstWriteLeavesEmptyDir: a write into an existing
// empty dir that fails (a ^C, a broken blob) leaves the dir empty, as one
// into a new dir leaves nothing, and the next write fills it.
func TestOCILayoutFailedFirstWriteLeavesEmptyDir(t *testing.T) {
	dir := t.TempDir()
	img := motdImage(t, strings.Repeat("x", 64<<10))
	if err := commit.WriteOCILayout(t.Context(), dir, failImage{img}, []string{"a"}); err == nil || !strings.Contains(err.Error(), "the blob broke") {
		t.Fatalf("WriteOCILayout of a broken image = %v, want its error", err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("after the failed write the dir holds %v (%v), want nothing", entries, err)
	}
	if err := commit.WriteOCILayout(t.Context(), dir, img, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := pullRef(t, "oci-layout://"+dir+":a", commit.PullOptions{}); err != nil {
		t.Errorf("the layout written next: %v", err)
	}
}
