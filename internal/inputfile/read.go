package inputfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ErrNotRegular is wrapped by the errors of Read for a path that is not a
// regular file.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is wrapped by the errors of Read for a file over the limit.
var ErrTooLarge = errors.New("file too large")

// Options says how much Read may read and what the file is.
type Options struct {
	// Max is the most bytes Read returns; a larger file is refused. It
	// must be positive.
	Max int64
	// What names the file in messages, as in `recipe` or `secret "npmrc"
	// source`: "recipe /x/f.yaml is a named pipe (FIFO), not a regular file".
	What string
}

// Read returns the content of the regular file at path, at most o.Max
// bytes. It refuses anything else at once, without opening it for reading
// in a way that could block: it stats the path, opens it non-blocking and
// checks that the opened file is the one it stat'ed. A file over o.Max is
// refused before it is read, or as soon as it grows past it while read.
func Read(path string, o Options) ([]byte, error) {
	if o.Max <= 0 {
		return nil, fmt.Errorf("reading %s %s: no size limit given", o.What, path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", o.What, err)
	}
	if err := check(path, fi, o); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|openFlags, 0)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", o.What, err)
	}
	defer f.Close()
	opened, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", o.What, err)
	}
	if err := check(path, opened, o); err != nil {
		return nil, err
	}
	if !os.SameFile(fi, opened) {
		return nil, fmt.Errorf("reading %s %s: the file was replaced while being opened; try again", o.What, path)
	}
	var buf bytes.Buffer
	buf.Grow(int(min(opened.Size(), o.Max)) + 1)
	n, err := buf.ReadFrom(io.LimitReader(f, o.Max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", o.What, err)
	}
	if n > o.Max {
		return nil, tooLarge(path, o.Max, true, o)
	}
	return buf.Bytes(), nil
}

// check refuses fi unless it is a regular file within the limit.
func check(path string, fi fs.FileInfo, o Options) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s %s is %s, %w", o.What, path, Kind(fi.Mode()), ErrNotRegular)
	}
	if fi.Size() > o.Max {
		return tooLarge(path, fi.Size(), false, o)
	}
	return nil
}

// tooLarge says path is size bytes, or more than size with atLeast.
func tooLarge(path string, size int64, atLeast bool, o Options) error {
	more := ""
	if atLeast {
		more = "more than "
	}
	msg := fmt.Sprintf("%s %s is %s%s, over the limit of %s", o.What, path, more, bytesText(size), bytesText(o.Max))
	return &fileError{msg: msg, kind: ErrTooLarge}
}

// fileError is a message that errors.Is matches to its kind.
type fileError struct {
	msg  string
	kind error
}

func (e *fileError) Error() string { return e.msg }
func (e *fileError) Unwrap() error { return e.kind }

// Kind names a file mode's type, with its article: "a directory", "a
// named pipe (FIFO)".
func Kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m.IsRegular():
		return "a regular file"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeIrregular != 0:
		return "an irregular file"
	}
	return "of an unknown type"
}

// bytesText writes n in bytes, with a binary unit when it is large.
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	f, units := float64(n)/unit, "KMGTPE"
	i := 0
	for f >= unit && i < len(units)-1 {
		f /= unit
		i++
	}
	if f == float64(int64(f)) {
		return fmt.Sprintf("%d %ciB", int64(f), units[i])
	}
	return fmt.Sprintf("%.1f %ciB", f, units[i])
}
