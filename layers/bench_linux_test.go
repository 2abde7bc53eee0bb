package layers

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
)

// BenchmarkDiff diffs 10 changes over lower trees of growing size: the time
// must not grow with the lower tree.
func BenchmarkDiff(b *testing.B) {
	requireOverlay(b)
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("lower=%dk", n/1000), func(b *testing.B) {
			lower := filepath.Join(b.TempDir(), "lower")
			for i := range n {
				p := filepath.Join(lower, fmt.Sprintf("d%03d/f%05d", i/100, i))
				if i%100 == 0 {
					mkdir(b, filepath.Dir(p), 0o755)
				}
				if err := os.WriteFile(p, []byte("content of a lower file"), 0o644); err != nil {
					b.Fatal(err)
				}
			}
			upper, _ := overlayDo(b, []string{lower}, func(m string) {
				for i := range 3 {
					write(b, filepath.Join(m, fmt.Sprintf("d%03d/f%05d", i, i*100)), "changed", 0o644)
					write(b, filepath.Join(m, fmt.Sprintf("d%03d/new%d", i+5, i)), "new", 0o644)
				}
				must(b, os.Remove(filepath.Join(m, "d007/f00700")))
				must(b, os.Remove(filepath.Join(m, "d008/f00800")))
				must(b, os.Chmod(filepath.Join(m, "d009/f00900"), 0o600))
				write(b, filepath.Join(m, "d004/extra"), "new", 0o644)
			}, false)
			st := diffLoop(b, DiffOptions{Upper: upper, Lowers: []string{lower}, KeepUpper: true})
			if got := st.Added + st.Modified + st.Deleted; got != 10 {
				b.Fatalf("diff has %d changes (%+v), want 10", got, st)
			}
		})
	}
}

// BenchmarkDiffNewFiles diffs an upper dir of 1,000 new small files in a
// new dir over a small lower tree: a step that generates files, whose diff
// the next step waits for.
func BenchmarkDiffNewFiles(b *testing.B) {
	requireOverlay(b)
	lower := filepath.Join(b.TempDir(), "lower")
	for i := range 100 {
		p := filepath.Join(lower, fmt.Sprintf("bin/f%03d", i))
		if i == 0 {
			mkdir(b, filepath.Dir(p), 0o755)
		}
		if err := os.WriteFile(p, []byte("content of a lower file"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	upper, _ := overlayDo(b, []string{lower}, func(m string) {
		mkdir(b, filepath.Join(m, "opt/app/gen"), 0o755)
		for i := range 1000 {
			write(b, filepath.Join(m, fmt.Sprintf("opt/app/gen/f%d.txt", i)), fmt.Sprintf("file %d of 1000", i), 0o644)
		}
	}, false)
	st := diffLoop(b, DiffOptions{Upper: upper, Lowers: []string{lower}, KeepUpper: true})
	if st.Added != 1003 {
		b.Fatalf("diff added %d entries (%+v), want 1003", st.Added, st)
	}
}

// diffLoop diffs o into io.Discard in b's loop and returns the last
// diff's counts.
func diffLoop(b *testing.B, o DiffOptions) DiffStats {
	var st DiffStats
	for b.Loop() {
		var err error
		if st, err = Diff(b.Context(), io.Discard, o); err != nil {
			b.Fatal(err)
		}
	}
	return st
}

// layerTar100MB is a layer of 100 files of 1 MiB of incompressible data.
func layerTar100MB(b *testing.B) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	r := rand.New(rand.NewPCG(1, 2))
	content := make([]byte, 1<<20)
	must(b, tw.WriteHeader(&tar.Header{Name: "data/", Typeflag: tar.TypeDir, Mode: 0o755}))
	for i := range 100 {
		for j := range content {
			content[j] = byte(r.Uint32())
		}
		must(b, tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/f%03d", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content))}))
		_, err := tw.Write(content)
		must(b, err)
	}
	must(b, tw.Close())
	return buf.Bytes()
}

// BenchmarkApply extracts a 100 MB layer with Apply.
func BenchmarkApply(b *testing.B) {
	requireOverlay(b)
	layer := layerTar100MB(b)
	b.SetBytes(int64(len(layer)))
	base := b.TempDir()
	for b.Loop() {
		dir, err := os.MkdirTemp(base, "apply-")
		must(b, err)
		must(b, Apply(b.Context(), dir, bytes.NewReader(layer)))
		b.StopTimer()
		must(b, os.RemoveAll(dir))
		b.StartTimer()
	}
}

// BenchmarkUnpack unpacks a 100 MB layer into a store: Apply plus
// diffID hashing and the publishing rename (with its unsynced marker).
func BenchmarkUnpack(b *testing.B) {
	requireOverlay(b)
	layer := layerTar100MB(b)
	d := digest.FromBytes(layer)
	b.SetBytes(int64(len(layer)))
	for b.Loop() {
		b.StopTimer()
		s, err := OpenStore(b.TempDir(), nil)
		must(b, err)
		b.StartTimer()
		if _, err := s.Unpack(b.Context(), d, bytes.NewReader(layer)); err != nil {
			b.Fatal(err)
		}
	}
}

// layerTarManyFiles is a layer shaped like a distribution's base: 500
// dirs four and five levels deep of 12 files each, mostly small (sizes
// drawn from 100 B to 64 KiB, a few of 1 MiB), with a symlink in each.
func layerTarManyFiles(b *testing.B) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	r := rand.New(rand.NewPCG(3, 4))
	content := make([]byte, 1<<20)
	for j := range content {
		content[j] = byte(r.Uint32() % 64) // compressible, not that it matters here
	}
	for _, dir := range []string{"usr/", "usr/lib/", "usr/lib/x86_64-linux-gnu/"} {
		must(b, tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755}))
	}
	for d := range 500 {
		dir := fmt.Sprintf("usr/lib/x86_64-linux-gnu/p%03d/", d/2)
		if d%2 == 1 {
			dir += "share/"
		}
		must(b, tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755}))
		for f := range 12 {
			size := 100 + r.IntN(16<<10)
			switch {
			case f == 0 && d%10 == 0:
				size = 1 << 20
			case f%4 == 0:
				size = r.IntN(64 << 10)
			}
			must(b, tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%sf%02d", dir, f), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size)}))
			_, err := tw.Write(content[:size])
			must(b, err)
		}
		must(b, tw.WriteHeader(&tar.Header{Name: dir + "link", Typeflag: tar.TypeSymlink, Linkname: "f00", Mode: 0o777}))
	}
	must(b, tw.Close())
	return buf.Bytes()
}

// BenchmarkExtractManyFiles extracts layerTarManyFiles into an empty dir,
// hashing it as Unpack does: with the extractor Unpack uses, and with
// containerd's archive.Apply given what Unpack gave it before.
func BenchmarkExtractManyFiles(b *testing.B) {
	requireOverlay(b)
	layer := layerTarManyFiles(b)
	b.Logf("%d MB", len(layer)>>20)
	for name, extract := range map[string]func(b testing.TB, dir string, tarball []byte) error{
		"extractor": applyExtract, "archive.Apply": applyReference,
	} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(layer)))
			base := b.TempDir()
			for b.Loop() {
				b.StopTimer()
				dir, err := os.MkdirTemp(base, "x-")
				must(b, err)
				b.StartTimer()
				must(b, extract(b, dir, layer))
				b.StopTimer()
				must(b, os.RemoveAll(dir))
				b.StartTimer()
			}
		})
	}
}
