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
// of an unchanged context reads none of its files. A write, chmod, chown,
// rename or new inode moves the ctime, which no user can set back; a
// file whose mtime or ctime is less than settleTime old when it is hashed
// is not remembered (it could change again within the same clock tick,
// its lstat the same). Only files on local filesystems that keep ctime
// are remembered (see localFSTypes): a network filesystem's attributes
// can be stale. Like git's index and BuildKit's context transfer, it cannot see
// a write through a shared mapping that the kernel has not yet timed
// (a page written again before it is written back): --no-cache reads every
// file again. Entries are hints: an unreadable or corrupt file of sums is
// read as empty and written again.
type Sums struct {
	file string
	// reread: every file is read (--no-cache); what is read is remembered.
	reread bool
	mu     sync.Mutex
	old    map[string]sum // as read: by context-relative path
	now    map[string]sum // looked up or made by this build
	hits   int            // lookups that read nothing
	// changed says that the file of sums is to be written again.
	changed bool
	// local is whether each device seen is a local filesystem that
	// keeps ctime (see localFSTypes).
	local map[uint64]bool
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

	// Never saved: the link count, for the hardlinks between a copy's
	// inputs (linked); and, seen only (HashSeen), when the lstat was
	// taken (nanoseconds since the epoch), and whether its filesystem's
	// lstat cannot be trusted to change with the file (see localFS).
	nlink     uint64
	statNs    int64
	untrusted bool
}

// The file type bits of sum.Mode (st_mode), as the kernel has them.
const (
	modeType = 0o170000
	modeDir  = 0o040000
	modeLink = 0o120000
)

// settleTime is how old a file's mtime and ctime must be for its digest
// to be remembered: longer than any filesystem's timestamp granularity.
var settleTime = 3 * time.Second

// sumsKeep is how long an entry no build used is kept.
const sumsKeep = 7 * 24 * time.Hour

// sumsRefresh is how stale an entry's Used may grow before a build that
// only looked it up writes the file of sums again.
const sumsRefresh = 24 * time.Hour

// sumsMagic heads a file of sums: its format, and the digests' (see
// hashOf; keyVersion changes with them).
const sumsMagic = "strata sums 1 " + keyVersion + "\n"

// OpenSums returns the sums remembered in dir for the build context
// contextDir (one file per context, named by the first half of the
// sha256 of its absolute path). With reread, no file is taken from them:
// every file is read, and remembered again.
func OpenSums(dir, contextDir string, reread bool) *Sums {
	abs, err := filepath.Abs(contextDir)
	if err != nil {
		abs = contextDir
	}
	name := sha256.Sum256([]byte(abs))
	s := &Sums{file: filepath.Join(dir, hex.EncodeToString(name[:16])), reread: reread,
		now: map[string]sum{}, local: map[uint64]bool{}}
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
	if s == nil || s.reread {
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
	if now := time.Now(); now.Sub(time.Unix(old.Used, 0)) > sumsRefresh {
		old.Used, s.changed = now.Unix(), true
	}
	s.now[path] = old
	s.hits++
	return old.Digest, true
}

// remember records digest as path's (full below the context) when fi,
// its lstat taken at statTime before it was read, is settled (see
// settleTime) on a local filesystem.
func (s *Sums) remember(path, full string, fi fs.FileInfo, statTime time.Time, digest string) {
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
	local, known := s.local[k.Dev]
	if !known {
		dir := full // on the file's filesystem, even when a mount point
		if fi.Mode()&fs.ModeSymlink != 0 {
			dir = filepath.Dir(full) // statfs would follow it
		}
		if local, known = localFS(dir); known {
			s.local[k.Dev] = local
		}
	}
	_, had := s.old[path]
	if _, made := s.now[path]; had || made {
		s.changed = true // replaced or forgotten
	}
	if !local || k.Mtime > settled || k.Ctime > settled {
		delete(s.now, path) // nor keep what an older build remembered
		delete(s.old, path)
		return
	}
	k.Digest, k.Used = digest, statTime.Unix()
	s.now[path], s.changed = k, true
}

// sameFile reports whether a and b are the same lstat.
func sameFile(a, b sum) bool {
	return a.Dev == b.Dev && a.Ino == b.Ino && a.Size == b.Size && a.Mode == b.Mode &&
		a.Mtime == b.Mtime && a.Ctime == b.Ctime
}

// Save writes the sums this build used or made, and those an earlier
// build used within sumsKeep, for the next build: to a temp renamed into
// place (two builds of one context at once: the last one's stays). When
// no file was read and no entry's Used is stale, it only sets the file's
// mtime, which says when the context was last built (see PruneSums).
func (s *Sums) Save() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	if !s.changed {
		s.mu.Unlock()
		now := time.Now()
		if err := os.Chtimes(s.file, now, now); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("writing the context's file sums: %w", err)
		}
		return nil
	}
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

// PruneSums removes, from dir, the sums of contexts not built for keep
// (their files' mtimes; 0: none go) and the temps of builds killed while
// saving them. The caller holds the state root's build lock exclusively.
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
