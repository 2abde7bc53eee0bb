package cache

import (
	"bufio"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Sums remembers the digests HashFiles made of a build context's files,
// by what lstat says of each: device, inode, size, mode, mtime and ctime.
// A file whose lstat says the same is not read again, so a cached rebuild
// of an unchanged context reads none of its files. Any write, chmod,
// chown, rename or new inode moves the ctime, which no user can set back;
// a file whose mtime or ctime is less than settleTime old when it is
// hashed is not remembered (it could change again within the same clock
// tick, its lstat the same). Entries are hints: an unreadable or corrupt
// file of sums is read as empty and written again.
type Sums struct {
	file string
	mu   sync.Mutex
	old  map[string]sum // as read: by context-relative path
	now  map[string]sum // looked up or made by this build
	hits int            // lookups that read nothing
}

// sum is what a file's lstat said when it was hashed, and its digest.
type sum struct {
	Dev, Ino     uint64
	Size         int64
	Mode         uint32
	Mtime, Ctime int64 // nanoseconds since the epoch
	Digest       string
	// Used is when a build last looked it up or made it (unix seconds):
	// an entry no build used for sumsKeep is dropped.
	Used int64
}

// settleTime is how old a file's mtime and ctime must be for its digest
// to be remembered: longer than any filesystem's timestamp granularity.
var settleTime = 3 * time.Second

// sumsKeep is how long an entry no build used is kept.
const sumsKeep = 7 * 24 * time.Hour

// sumsMagic heads a file of sums: its format.
const sumsMagic = "strata sums 1\n"

// OpenSums returns the sums remembered in dir for the build context
// contextDir (one file per context, named by the sha256 of its absolute
// path).
func OpenSums(dir, contextDir string) *Sums {
	abs, err := filepath.Abs(contextDir)
	if err != nil {
		abs = contextDir
	}
	name := sha256.Sum256([]byte(abs))
	s := &Sums{file: filepath.Join(dir, hex.EncodeToString(name[:16])), now: map[string]sum{}}
	s.old = readSums(s.file)
	return s
}

// readSums reads a file of sums; nil if it is missing or unreadable.
func readSums(file string) map[string]sum {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	r := bufio.NewReader(f)
	magic := make([]byte, len(sumsMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != sumsMagic {
		return nil
	}
	var m map[string]sum
	if err := gob.NewDecoder(r).Decode(&m); err != nil {
		return nil
	}
	return m
}

// lookup returns the digest remembered for path if fi is what its lstat
// said then.
func (s *Sums) lookup(path string, fi fs.FileInfo) (string, bool) {
	if s == nil {
		return "", false
	}
	k, ok := sumOf(fi)
	if !ok {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.now[path]
	if !ok {
		old, ok = s.old[path]
	}
	if !ok || !sameFile(old, k) {
		return "", false
	}
	old.Used = time.Now().Unix()
	s.now[path] = old
	s.hits++
	return old.Digest, true
}

// remember records digest as path's when fi, its lstat taken at statTime
// before it was read, is settled (see settleTime).
func (s *Sums) remember(path string, fi fs.FileInfo, statTime time.Time, digest string) {
	if s == nil {
		return
	}
	k, ok := sumOf(fi)
	if !ok {
		return
	}
	settled := statTime.Add(-settleTime).UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if k.Mtime > settled || k.Ctime > settled {
		delete(s.now, path) // nor keep what an older build remembered
		delete(s.old, path)
		return
	}
	k.Digest, k.Used = digest, statTime.Unix()
	s.now[path] = k
}

// sameFile reports whether a and b are the same lstat.
func sameFile(a, b sum) bool {
	return a.Dev == b.Dev && a.Ino == b.Ino && a.Size == b.Size && a.Mode == b.Mode &&
		a.Mtime == b.Mtime && a.Ctime == b.Ctime
}

// Save writes the sums this build used or made, and those an earlier
// build used within sumsKeep, for the next build: to a temp renamed into
// place (two builds of one context at once: the last one's stays).
func (s *Sums) Save() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	m := make(map[string]sum, len(s.now))
	cutoff := time.Now().Add(-sumsKeep).Unix()
	for p, e := range s.old {
		if e.Digest != "" && e.Used >= cutoff {
			m[p] = e
		}
	}
	for p, e := range s.now {
		m[p] = e
	}
	s.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(s.file), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.file), ".sums-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	_, err = w.WriteString(sumsMagic)
	if err == nil {
		err = gob.NewEncoder(w).Encode(m)
	}
	if err == nil {
		err = w.Flush()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing the context's file sums: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.file); err != nil {
		return fmt.Errorf("writing the context's file sums: %w", err)
	}
	return nil
}

// PruneSums removes, from dir, the sums of contexts no build used for
// keep (0: none go) and the temps of builds killed while saving them. The
// caller holds the state root's build lock exclusively.
func PruneSums(dir string, keep time.Duration, now time.Time) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			continue // gone meanwhile
		}
		temp := strings.HasPrefix(e.Name(), ".sums-")
		if temp || keep > 0 && now.Sub(fi.ModTime()) > keep {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
