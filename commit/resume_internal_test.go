package commit

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
	"time"
)

// dropping opens blob, each fetch ending with io.ErrUnexpectedEOF after
// at most cut more bytes than the previous one got.
func dropping(blob []byte, cut int) (open func() (io.ReadCloser, error), opened *int) {
	opened = new(int)
	reach := 0
	return func() (io.ReadCloser, error) {
		*opened++
		reach = min(reach+cut, len(blob))
		r := io.Reader(bytes.NewReader(blob[:reach]))
		if reach < len(blob) {
			r = io.MultiReader(r, iotest.ErrReader(io.ErrUnexpectedEOF))
		}
		return io.NopCloser(r), nil
	}, opened
}

func TestResumingReader(t *testing.T) {
	saved := fetchBackoff
	fetchBackoff = time.Millisecond
	defer func() { fetchBackoff = saved }()
	blob := bytes.Repeat([]byte("0123456789"), 100)

	open, opened := dropping(blob, 300)
	first, _ := open()
	got, err := io.ReadAll(newResumingReader(t.Context(), first, int64(len(blob)), open))
	if err != nil || !bytes.Equal(got, blob) {
		t.Errorf("dropped every 300 bytes: read %d bytes, %v; want the %d whole", len(got), err, len(blob))
	}
	if *opened != 4 {
		t.Errorf("fetched %d times, want 4", *opened)
	}

	open, _ = dropping(blob, 100)
	first, _ = open()
	_, err = io.ReadAll(newResumingReader(t.Context(), first, int64(len(blob)), open))
	var lost *ConnLostError
	if !errors.As(err, &lost) || lost.Read != 400 || lost.Tries != 4 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("dropped every 100 bytes: %v; want a ConnLostError after 400 bytes and 4 fetches", err)
	}

	// Closed while waiting to fetch again (its reader gave up): the read
	// ends at once.
	fetchBackoff = time.Hour
	open, _ = dropping(blob, 100)
	first, _ = open()
	r := newResumingReader(t.Context(), first, int64(len(blob)), open)
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(r); done <- err }()
	time.Sleep(50 * time.Millisecond)
	r.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a closed reader read the blob whole")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end a read waiting to fetch again")
	}
}
