package commit

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// TestChunkPipe: what is written in writes of any size is read back in
// order, in reads of any size, then the writer's error; once the reader
// closes, writes fail with its error.
func TestChunkPipe(t *testing.T) {
	data := make([]byte, 5*pipeChunk+12345)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.IntN(256))
	}
	for _, werr := range []error{nil, errors.New("writer broke")} {
		p := newChunkPipe()
		go func() {
			rest := data
			for len(rest) > 0 {
				n := min(len(rest), 1+rng.IntN(3*pipeChunk/2))
				if _, err := p.Write(rest[:n]); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
				rest = rest[n:]
			}
			p.CloseWrite(werr)
		}()
		var got bytes.Buffer
		buf := make([]byte, 7777)
		var err error
		for {
			var n int
			n, err = p.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				break
			}
		}
		if !bytes.Equal(got.Bytes(), data) {
			t.Errorf("read %d bytes back, not the %d written", got.Len(), len(data))
		}
		if want := werr; want == nil && !errors.Is(err, io.EOF) || want != nil && !errors.Is(err, want) {
			t.Errorf("Read's last error = %v, want %v", err, werr)
		}
	}

	p := newChunkPipe()
	stopped := errors.New("reader stopped")
	p.CloseRead(stopped)
	var err error
	for i := 0; i < pipeChunks+2 && err == nil; i++ {
		_, err = p.Write(make([]byte, pipeChunk))
	}
	if !errors.Is(err, stopped) {
		t.Errorf("Write after CloseRead = %v, want %v", err, stopped)
	}
}
