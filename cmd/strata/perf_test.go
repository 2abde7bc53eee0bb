package main_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratabuild/strata/internal/testutil"
)

// slowRecipe copies a file whose compression at zstd level 19 takes a
// few seconds, then runs a step that sleeps ${NAP} seconds: the copy's
// layer is being compressed while the second step runs.
const slowRecipe = `from: ${BASE}
args: {BASE: scratch, NAP: "0"}
steps:
  - copy: text.txt
    to: /text.txt
  - run: echo next-step-running; sleep ${NAP}
`

// slowText is n bytes of random letters: compressible, and slow to
// compress at the highest zstd levels.
func slowText(n int) string {
	r := rand.New(rand.NewPCG(13, 17))
	const letters = "abcdefghijklmnop qrstuvwxyz\n"
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[r.IntN(len(letters))]
	}
	return string(b)
}

// hexName matches the name of a blob named by its digest.
var hexName = regexp.MustCompile(`^[0-9a-f]{64}$`)

// checkBlobs checks that every blob under root is whole (its content has
// the digest it is named by) and that every cache entry's layer is one of
// them; it returns the temps it found.
func checkBlobs(t *testing.T, root string) (temps []string) {
	t.Helper()
	blobs := filepath.Join(root, "blobs")
	des, err := os.ReadDir(blobs)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		name := de.Name()
		if !hexName.MatchString(name) {
			if strings.HasPrefix(name, ".") {
				temps = append(temps, name)
			}
			continue
		}
		data, err := os.ReadFile(filepath.Join(blobs, name))
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != name {
			t.Errorf("blob %s is not whole: its content has digest %x", name, sum)
		}
	}
	entries, _ := filepath.Glob(filepath.Join(root, "cache", "index", "*.json"))
	for _, e := range entries {
		var entry struct {
			Layer *struct{ Digest string }
		}
		data, err := os.ReadFile(e)
		if err != nil || json.Unmarshal(data, &entry) != nil {
			t.Fatalf("cache entry %s: %v", e, err)
		}
		if entry.Layer == nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(blobs, strings.TrimPrefix(entry.Layer.Digest, "sha256:"))); err != nil {
			t.Errorf("cache entry %s names a blob that is not there: %v", e, err)
		}
	}
	return temps
}

// TestKilledDuringCompression: a build killed (SIGKILL) while a step's
// layer is compressed in the background leaves no blob named by a digest
// that is not whole and no cache entry for that step; the next build on
// the same root is correct — the digest of an uninterrupted build — and
// removes the temps the killed one left.
func TestKilledDuringCompression(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, slowRecipe, map[string]string{"text.txt": slowText(12 << 20)})
	env := []string{"SOURCE_DATE_EPOCH=1700000000"}
	args := func(root, nap string) []string {
		return []string{"build", "--root", root, "--compression", "zstd", "--compression-level", "19",
			"--build-arg", busyboxBase(t), "--build-arg", "NAP=" + nap, ctx}
	}
	root := t.TempDir()
	cmd := exec.Command(strataBin, args(root, "300")...)
	cmd.Env = append(os.Environ(), env...)
	stderr, pr := startUntil(t, cmd, "next-step-running")
	// The next step may start before the compressor has made its temp
	// blob: wait for it (zstd 19 takes seconds over the 12 MiB layer).
	var compressing []string
	for deadline := time.Now().Add(10 * time.Second); len(compressing) == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		compressing, _ = filepath.Glob(filepath.Join(root, "blobs", fmt.Sprintf(".*.tmp-%d.*", cmd.Process.Pid)))
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	pr.Close()
	if len(compressing) == 0 || strings.Contains(stderr.String(), "compressed:") {
		t.Fatalf("the first layer was not being compressed when the build was killed; the test proves nothing\n%s", stderr.String())
	}
	if temps := checkBlobs(t, root); len(temps) == 0 {
		t.Error("the killed build left no temp in the blob dir; the test proves nothing")
	}
	if entries, _ := filepath.Glob(filepath.Join(root, "cache", "index", "*.json")); len(entries) != 0 {
		t.Errorf("the killed build recorded %v, whose blobs were not whole", entries)
	}

	next := mustBuild(t, env, args(root, "0")[1:]...)
	want := mustBuild(t, env, args(t.TempDir(), "0")[1:]...)
	if next != want {
		t.Errorf("the build after the killed one made %s, an uninterrupted one %s", next, want)
	}
	if temps := checkBlobs(t, root); len(temps) != 0 {
		t.Errorf("temps left in the blob dir after the next build: %v", temps)
	}
	assertNoLeftovers(t, root)
}

// TestKilledDuringStreamedPush: a build killed while its first layer is
// compressed and uploaded as it is written names no blob in the registry,
// and the next build pushes the image an uninterrupted build makes, whole
// (skopeo checks every blob's digest as it copies the image).
func TestKilledDuringStreamedPush(t *testing.T) {
	requireBuildTools(t)
	testutil.Require(t, "skopeo", func() error { _, err := exec.LookPath("skopeo"); return err }, "apt-get install -y skopeo")
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	ctx := writeRecipe(t, slowRecipe, map[string]string{"text.txt": slowText(12 << 20)})
	env := []string{"SOURCE_DATE_EPOCH=1700000000"}
	args := func(root, nap, repo string) []string {
		return []string{"build", "--root", root, "--compression", "zstd", "--compression-level", "19",
			"--build-arg", busyboxBase(t), "--build-arg", "NAP=" + nap, "-t", reg.Addr + "/" + repo + ":1", "--push", ctx}
	}
	root := t.TempDir()
	cmd := exec.Command(strataBin, args(root, "300", "strata/killed")...)
	cmd.Env = append(os.Environ(), env...)
	stderr, pr := startUntil(t, cmd, "next-step-running")
	// The upload starts with the compression: once the registry has
	// answered its POST, its PATCH is being sent.
	for deadline := time.Now().Add(10 * time.Second); reg.Requests(t, "POST", "/v2/strata/killed/blobs/uploads/") == 0; {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no upload started while the first layer is compressed; the test proves nothing\n%s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	pr.Close()
	if strings.Contains(stderr.String(), "compressed:") {
		t.Fatalf("the first layer was compressed before the build was killed; the test proves nothing\n%s", stderr.String())
	}
	if got := reg.Uploads(t); len(got) != 0 {
		t.Errorf("the killed build named blobs in the registry: %v", got)
	}

	next := mustBuild(t, env, args(root, "0", "strata/killed")[1:]...)
	want := mustBuild(t, env, args(t.TempDir(), "0", "strata/whole")[1:]...)
	if next != want {
		t.Errorf("the build after the killed one pushed %s, an uninterrupted one %s", next, want)
	}
	run(t, nil, "skopeo", "copy", "-q", "--src-tls-verify=false", "docker://"+reg.Addr+"/strata/killed:1",
		"oci:"+filepath.Join(t.TempDir(), "pulled")+":1")
	assertNoLeftovers(t, root)
}

// TestCommitMemoryFlat: committing a step that wrote 1 GiB of
// incompressible data keeps strata's peak memory (and its children's) far
// below the data: under 100 MiB.
func TestCommitMemoryFlat(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, `from: ${BASE}
args: {BASE: scratch}
steps:
  - run: head -c 1073741824 /dev/urandom > /big.bin
`, map[string]string{})
	meta := filepath.Join(t.TempDir(), "meta.json")
	cmd := exec.Command(strataBin, "build", "--root", t.TempDir(), "--metadata-file", meta,
		"--build-arg", busyboxBase(t), "-o", "type=oci,dest="+filepath.Join(t.TempDir(), "out"), ctx)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	own := make(chan int64)
	go func() { own <- peakRSS(cmd.Process.Pid) }()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("build: %v\n%s", err, stderr.String())
	}
	strata := <-own
	tree := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB: strata's or a child's, the largest
	var m struct {
		Steps []struct {
			Timings struct {
				Process  int64 `json:"process_ns"`
				Commit   int64 `json:"commit_ns"`
				Compress int64 `json:"compress_ns"`
			}
			Layer struct{ Size int64 }
		}
	}
	data, err := os.ReadFile(meta)
	if err != nil || json.Unmarshal(data, &m) != nil || len(m.Steps) != 1 {
		t.Fatalf("metadata: %v\n%s", err, data)
	}
	s := m.Steps[0]
	t.Logf("1 GiB step: peak RSS of strata %.1f MiB, of any process of the build %.1f MiB; run %s, commit %s, compression %s; layer %d bytes; build %s",
		float64(strata)/1024, float64(tree)/1024, time.Duration(s.Timings.Process), time.Duration(s.Timings.Commit),
		time.Duration(s.Timings.Compress), s.Layer.Size, time.Since(start).Round(time.Millisecond))
	if s.Layer.Size < 1<<30 {
		t.Errorf("layer of %d bytes; the step did not write 1 GiB of incompressible data", s.Layer.Size)
	}
	if strata <= 0 || strata >= 100*1024 || tree >= 100*1024 {
		t.Errorf("peak RSS of strata %.1f MiB, of the build's processes %.1f MiB; want both under 100 MiB", float64(strata)/1024, float64(tree)/1024)
	}
}

// peakRSS polls the peak resident memory (VmHWM, KiB) of process pid
// until it ends, and returns the last it read.
func peakRSS(pid int) int64 {
	var peak int64
	for {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return peak
		}
		for _, line := range strings.Split(string(data), "\n") {
			var kb int64
			if _, err := fmt.Sscanf(line, "VmHWM: %d kB", &kb); err == nil {
				peak = max(peak, kb)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCachedRebuildLinksBlobs: a fully cached rebuild on an oci-layout://
// base writes its output layout by hardlinking every layer's blob kept
// under --root, the base's included: nothing is copied.
func TestCachedRebuildLinksBlobs(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, `from: ${BASE}
args: {BASE: scratch}
steps:
  - run: echo cached > /cached.txt
`, map[string]string{})
	root := t.TempDir()
	build := func() (layout string) {
		layout = filepath.Join(t.TempDir(), "out")
		mustBuild(t, nil, "--root", root, "--build-arg", busyboxBase(t), "-t", "c:1", "-o", "type=oci,dest="+layout, ctx)
		return layout
	}
	build()
	out := build()
	manifest := filepath.Join(out, "blobs", "sha256", strings.TrimPrefix(ociIndexDigest(t, out, "c:1"), "sha256:"))
	data, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Layers []struct{ Digest string } }
	if err := json.Unmarshal(data, &m); err != nil || len(m.Layers) != 2 {
		t.Fatalf("manifest: %v, %d layers; want the base's and the step's\n%s", err, len(m.Layers), data)
	}
	for _, l := range m.Layers {
		hex := strings.TrimPrefix(l.Digest, "sha256:")
		a, errA := os.Stat(filepath.Join(out, "blobs", "sha256", hex))
		b, errB := os.Stat(filepath.Join(root, "blobs", hex))
		if errA != nil || errB != nil || a.Sys().(*syscall.Stat_t).Ino != b.Sys().(*syscall.Stat_t).Ino {
			t.Errorf("layer %s of the rebuild's output is not a link to the blob under --root: %v %v", l.Digest, errA, errB)
		}
	}
}

// TestCachedRebuildSeesContextChanges: once a copy's inputs have settled,
// the next build remembers their digests by their lstat (a cached rebuild
// then reads no file of the context: build/cache.Sums); a change that
// keeps a file's size and puts its mtime back still makes the copy run
// again, and the image holds the new content.
func TestCachedRebuildSeesContextChanges(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, `from: ${BASE}
args: {BASE: scratch}
steps:
  - copy: app
    to: /app
`, map[string]string{"app/a.txt": "version 1\n", "app/b.txt": "unchanged\n"})
	root, base := t.TempDir(), busyboxBase(t)
	build := func() (cached bool, layout string) {
		t.Helper()
		layout, meta := filepath.Join(t.TempDir(), "out"), filepath.Join(t.TempDir(), "m.json")
		mustBuild(t, nil, "--root", root, "--build-arg", base, "--metadata-file", meta, "-t", "c:1", "-o", "type=oci,dest="+layout, ctx)
		m := readMetadata(t, meta)
		return m.Steps[len(m.Steps)-1].Cached, layout
	}
	// sumsFile is the file of the context's sums: the only one in --root.
	sumsFile := func() os.FileInfo {
		t.Helper()
		sums, err := os.ReadDir(filepath.Join(root, "cache", "sums"))
		if err != nil || len(sums) != 1 {
			t.Fatalf("--root's cache/sums holds %v (%v), want one file: the context's", sums, err)
		}
		fi, err := os.Stat(filepath.Join(root, "cache", "sums", sums[0].Name()))
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	build()
	time.Sleep(3500 * time.Millisecond) // longer than a file takes to settle
	if cached, _ := build(); !cached {
		t.Fatal("the rebuild ran the copy")
	}
	sumsFile()
	a := filepath.Join(ctx, "app", "a.txt")
	fi, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a, []byte("version 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(a, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	cached, out := build()
	if cached {
		t.Error("the copy was cached after its input changed")
	}
	bundle := filepath.Join(t.TempDir(), "bundle")
	run(t, nil, "umoci", "unpack", "--image", out+":c:1", bundle)
	if got, err := os.ReadFile(filepath.Join(bundle, "rootfs", "app", "a.txt")); err != nil || string(got) != "version 2\n" {
		t.Errorf("/app/a.txt = %q, %v; want version 2", got, err)
	}
	if cached, _ := build(); !cached {
		t.Error("the build after it ran the copy again")
	}

	// --no-cache reads every file again, and writes what it read; a
	// cached build, having read none, does not.
	time.Sleep(3500 * time.Millisecond) // a.txt settles: the next build remembers it
	build()
	before := sumsFile()
	build()
	if !os.SameFile(before, sumsFile()) {
		t.Error("a cached build wrote the context's sums again")
	}
	mustBuild(t, nil, "--root", root, "--build-arg", base, "--no-cache", "-o", "type=oci,dest="+filepath.Join(t.TempDir(), "out"), ctx)
	if os.SameFile(before, sumsFile()) {
		t.Error("a --no-cache build did not read the context's files again")
	}
}
