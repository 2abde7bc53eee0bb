package layers

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestDiffFileOver8GiB: a sparse file past USTAR's 8 GiB size limit gets a
// correct size and its full content in the tar.
func TestDiffFileOver8GiB(t *testing.T) {
	requireOverlay(t)
	if testing.Short() {
		t.Skip("reads 8 GiB; skipped with -short")
	}
	const size = 8<<30 + 5
	lower := t.TempDir()
	upper, _ := overlayDo(t, []string{lower}, func(m string) {
		f, err := os.Create(filepath.Join(m, "big"))
		must(t, err)
		_, err = f.WriteAt([]byte("head"), 0)
		must(t, err)
		_, err = f.WriteAt([]byte("tail!"), size-5)
		must(t, err)
		must(t, f.Close())
	}, false)
	pr, pw := io.Pipe()
	go func() {
		_, err := Diff(t.Context(), pw, DiffOptions{Upper: upper, Lowers: []string{lower}})
		pw.CloseWithError(err)
	}()
	tr := tar.NewReader(pr)
	hdr, err := tr.Next()
	must(t, err)
	if hdr.Name != "big" || hdr.Size != size {
		t.Fatalf("entry %q size %d, want big size %d", hdr.Name, hdr.Size, size)
	}
	buf, zero := make([]byte, 1<<20), make([]byte, 1<<20)
	var off int64
	var head, tail []byte
	for {
		n, err := io.ReadFull(tr, buf)
		chunk := buf[:n]
		if off == 0 {
			head = bytes.Clone(chunk[:4])
			chunk = chunk[4:]
		}
		if off+int64(n) == size {
			tail = bytes.Clone(chunk[len(chunk)-5:])
			chunk = chunk[:len(chunk)-5]
		}
		if !bytes.Equal(chunk, zero[:len(chunk)]) {
			t.Fatalf("non-zero bytes in the hole near offset %d", off)
		}
		off += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		must(t, err)
	}
	if off != size || string(head) != "head" || string(tail) != "tail!" {
		t.Errorf("read %d bytes, head %q, tail %q; want %d, head, tail!", off, head, tail, size)
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("after big: %v, want the end of the tar", err)
	}
}
