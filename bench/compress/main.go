// Command compress measures layer compressors on layer tars: for each file
// it compresses the whole tar as strata commits a layer (one pass, the tar
// and the blob both hashed with sha256, the blob written to a file) and
// prints the compressed size and the time it took. bench/compression.sh
// runs it over the bench workloads' layers at every level considered.
//
//	go run ./bench/compress -codec gzip -level 6 -n 3 layer.tar...
//
// Codecs: gzip (klauspost/compress/gzip, one stream: strata's before the
// measurement in docs/benchmarks.md), pgzip (klauspost/pgzip, blocks of
// 1 MiB on up to 4 cores: strata's gzip since, and buildah's), stdgzip (the
// standard library's compress/gzip: docker's), zstd
// (klauspost/compress/zstd: strata's). Level 0 is the codec's default.
package main

import (
	"compress/gzip"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

func main() {
	codec := flag.String("codec", "gzip", "gzip, stdgzip, pgzip or zstd")
	level := flag.Int("level", 0, "compression level (0: the codec's default)")
	runs := flag.Int("n", 1, "runs per file; the median time is printed")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: compress [-codec C] [-level N] [-n RUNS] TAR...")
		os.Exit(2)
	}
	for _, path := range flag.Args() {
		if err := measure(path, *codec, *level, *runs); err != nil {
			fmt.Fprintf(os.Stderr, "compress: %s: %v\n", path, err)
			os.Exit(1)
		}
	}
}

// measure compresses path runs times and prints one line:
// codec level file tar-bytes blob-bytes median-seconds.
func measure(path, codec string, level, runs int) error {
	var times []time.Duration
	var in, out int64
	for range max(runs, 1) {
		start := time.Now()
		var err error
		if in, out, err = compressFile(path, codec, level); err != nil {
			return err
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	fmt.Printf("%s\t%d\t%s\t%d\t%d\t%.3f\n", codec, level, filepath.Base(path), in, out, times[len(times)/2].Seconds())
	return nil
}

// compressFile does what commit.WriteLayer does with the tar at path: one
// pass through the compressor into a temp file next to nothing else,
// hashing both sides.
func compressFile(path, codec string, level int) (in, out int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	tmp, err := os.CreateTemp("", "compress-bench-*")
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	blob := &counter{w: io.MultiWriter(tmp, sha256.New())}
	zw, err := encoder(blob, codec, level)
	if err != nil {
		return 0, 0, err
	}
	if in, err = io.Copy(io.MultiWriter(zw, sha256.New()), f); err != nil {
		return 0, 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, 0, err
	}
	return in, blob.n, nil
}

func encoder(w io.Writer, codec string, level int) (io.WriteCloser, error) {
	switch codec {
	case "gzip":
		return kgzip.NewWriterLevel(w, orDefault(level, kgzip.DefaultCompression))
	case "stdgzip":
		return gzip.NewWriterLevel(w, orDefault(level, gzip.DefaultCompression))
	case "pgzip":
		zw, err := pgzip.NewWriterLevel(w, orDefault(level, pgzip.DefaultCompression))
		if err != nil {
			return nil, err
		}
		return zw, zw.SetConcurrency(1<<20, min(runtime.GOMAXPROCS(0), 4)) // as commit does
	case "zstd":
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(orDefault(level, 3))))
	}
	return nil, fmt.Errorf("unknown codec %q", codec)
}

func orDefault(level, def int) int {
	if level == 0 {
		return def
	}
	return level
}

type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
