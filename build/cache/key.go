package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratabuild/strata/internal/rootfs"
)

// Inputs is everything that determines a step's result, plus what explains
// a miss. Fields marked "explanation only" are not part of the key.
type Inputs struct {
	// StepID names "the same step" across builds: FILE:STAGE:INDEX
	// (explanation only).
	StepID string `json:"step_id"`
	// Parent is the diffIDs of every layer below the step, bottom first.
	Parent []string `json:"parent"`
	// Env, User, Workdir and Shell are the config state before the step.
	Env     []string `json:"env"`
	User    string   `json:"user"`
	Workdir string   `json:"workdir"`
	Shell   []string `json:"shell"`
	// Step is the canonical, expanded step definition.
	Step string `json:"step"`
	// Files maps each input of a copy from the build context (relative,
	// slash-separated) to the digest of its content (see HashFiles).
	Files map[string]string `json:"files,omitempty"`
	// Args are the recipe's args and their values (explanation only: the
	// step text already carries what the step used).
	Args map[string]string `json:"args,omitempty"`
	// Base is the base image's digest (explanation only: Parent covers
	// its layers).
	Base string `json:"base,omitempty"`
}

// keyVersion changes whenever the key's encoding or meaning changes, so
// that old entries simply miss. v2: a file's exec bit is its owner's, as
// a copy writes it; a dir's digest lists no entries; hardlinks count. v3:
// a step's layer records an mtime the step set; and an older strata's
// entries may hold a wrong layer, made over a snapshot that held dirs its
// layer did not (see layers.RetireOldSnapshots). v4: v3's recorded a name
// copied up out of its hardlink group unchanged (a chmod -R that changed
// nothing stored each name again), which no layer does any more. v5: a
// copy or file step made the missing parents of its destination with
// strata's umask (0700 under umask 077), where they are 0755; and a copy
// of a directory to a new path gave it its source's owner and mode. v6: a
// run step ran with no_new_privs (a setuid sudo or su, a ping with file
// capabilities, failed: a step that went on anyway stored a layer without
// their work) and covered /etc/hostname (a step's write to it was
// dropped). Entries record it (Entry.KeyVersion).
const keyVersion = "strata-cache-v6"

// Key is the step's cache key, "sha256:<hex>".
func (in *Inputs) Key() string {
	h := sha256.New()
	w := func(tag string, vals ...string) {
		fmt.Fprintf(h, "%s %d\n", tag, len(vals))
		for _, v := range vals {
			fmt.Fprintf(h, "%d:%s\n", len(v), v)
		}
	}
	w(keyVersion)
	w("parent", in.Parent...)
	w("env", in.Env...)
	w("user", in.User)
	w("workdir", in.Workdir)
	w("shell", in.Shell...)
	w("step", in.Step)
	files := make([]string, 0, len(in.Files))
	for p, d := range in.Files {
		files = append(files, p+"\x00"+d)
	}
	sort.Strings(files)
	w("files", files...)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// HashFiles hashes copy inputs below root, paths being relative and
// slash-separated: what a copy of them writes, no more. A file's digest
// covers its type, whether its owner may execute it (a copy makes it 0755,
// else 0644), its content or symlink target, and which earlier input
// it is a hardlink of, if any (a copy keeps hardlinks between its
// sources) — never mtimes, other mode bits or owners, which differ
// between checkouts of the same commit. A directory's is only that: its
// entries are inputs of their own, unless the ignore file leaves them
// out. A file sums remembers (nil: none) is not read again; the digests
// of those read are remembered.
func HashFiles(root string, paths []string, sums *Sums) (map[string]string, error) {
	digests, _, err := HashSeen(root, paths, sums)
	return digests, err
}

// HashSeen is HashFiles, which also returns what it saw of each input
// before it hashed it: a copy checks with it that the files it copied
// were the ones hashed (Seen.Unchanged).
func HashSeen(root string, paths []string, sums *Sums) (map[string]string, Seen, error) {
	// The files are hashed on every core (a context of a few hundred
	// files is read before the first step), each worker with one read
	// buffer for all its files.
	digests := make([]string, len(paths))
	stats := make([]sum, len(paths))
	errs := make([]error, len(paths))
	fsOf := &localFSes{}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, min(runtime.GOMAXPROCS(0), len(paths), 8)) {
		wg.Go(func() {
			buf := make([]byte, 64<<10) // io.Copy would allocate one per file
			for {
				i := int(next.Add(1)) - 1
				if i >= len(paths) {
					return
				}
				digests[i], stats[i], errs[i] = hashFile(root, paths[i], buf, sums)
				stats[i].untrusted = !fsOf.local(filepath.Join(root, filepath.FromSlash(paths[i])), stats[i])
			}
		})
	}
	wg.Wait()
	out := make(map[string]string, len(paths))
	seen := make(Seen, len(paths))
	for i, p := range paths {
		if errs[i] != nil {
			return nil, nil, errs[i] // the first in path order, as one by one
		}
		out[p], seen[p] = digests[i], stats[i]
	}
	linked(paths, stats, out)
	return out, seen, nil
}

// linked adds to the digest of each non-dir input that is a hardlink of
// an earlier one (in paths' order) the path of the first: a copy of them
// writes one file with several names. stats are the inputs' lstats, in
// paths' order.
func linked(paths []string, stats []sum, digests map[string]string) {
	first := map[[2]uint64]string{}
	for i, p := range paths {
		st := stats[i]
		if st.Mode&modeType == modeDir || st.nlink < 2 {
			continue
		}
		id := [2]uint64{st.Dev, st.Ino}
		if f, ok := first[id]; ok {
			digests[p] += " hardlink of " + f
			continue
		}
		first[id] = p
	}
}

// Seen is what HashSeen saw of each input (its lstat) before hashing it,
// and the digest of its content it found.
type Seen map[string]sum

// localFSes remembers, by device, whether a filesystem is one whose lstat
// changes with its files (localFS).
type localFSes struct{ m sync.Map }

func (l *localFSes) local(full string, st sum) bool {
	if v, ok := l.m.Load(st.Dev); ok {
		return v.(bool)
	}
	dir := full
	if st.Mode&modeType == modeLink {
		dir = filepath.Dir(full) // statfs would follow it
	}
	local, ok := localFS(dir)
	if ok {
		l.m.Store(st.Dev, local)
	}
	return local
}

// Unchanged returns an error naming the first input below root that is no
// longer what it was when it was hashed, or that is gone; files are its
// digests from HashSeen. A file whose lstat is the one seen is (a write, a
// chmod, a rename over it all change its ctime, which no user can set
// back) — unless its filesystem's lstat is not to be trusted (NFS, FUSE;
// see localFS), or it had changed less than settleTime before it was
// hashed (a second write within one timestamp tick would not show);
// those, and one whose lstat moved, are read again, and pass if their
// content and exec bit are the same (a chmod g+w, a touch, a hardlink
// made elsewhere); then the hardlinks between the inputs must be as they
// were.
// A dir only has to be one still: files come and go in it that the
// ignore file leaves out (which inputs there are is the caller's to
// check).
func (s Seen) Unchanged(root string, files map[string]string) error {
	paths := make([]string, 0, len(s))
	for p := range s {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	now := make(map[string]string, len(paths))
	stats := make([]sum, len(paths))
	var buf []byte
	for i, p := range paths {
		was := s[p]
		full := filepath.Join(root, filepath.FromSlash(p))
		fi, err := os.Lstat(full)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		st, ok := sumOf(fi)
		stats[i] = st
		if was.Mode&modeType == modeDir && fi.IsDir() {
			now[p] = was.Digest
			continue
		}
		settled := was.Ctime <= was.statNs-settleTime.Nanoseconds()
		if ok && settled && !was.untrusted && sameFile(st, was) {
			now[p] = was.Digest
			continue
		}
		if buf == nil {
			buf = make([]byte, 64<<10)
		}
		d, err := hashOf(full, p, fi, buf)
		if err != nil {
			return err
		}
		if d != was.Digest {
			return fmt.Errorf("%s changed", p)
		}
		now[p] = d
	}
	linked(paths, stats, now)
	for _, p := range paths {
		if now[p] != files[p] {
			return fmt.Errorf("%s changed: its hardlinks", p)
		}
	}
	return nil
}

// hashFile is HashFiles' digest of one path, read through buf, or the
// one sums remembers, and its lstat before it was read.
func hashFile(root, p string, buf []byte, sums *Sums) (string, sum, error) {
	full := filepath.Join(root, filepath.FromSlash(p))
	statTime := time.Now()
	fi, err := os.Lstat(full)
	if err != nil {
		return "", sum{}, err
	}
	seen, _ := sumOf(fi)
	seen.statNs = statTime.UnixNano()
	if d, ok := sums.lookup(p, fi); ok {
		seen.Digest = d
		return d, seen, nil
	}
	d, err := hashOf(full, p, fi, buf)
	if err == nil {
		sums.remember(p, full, fi, statTime, d)
	}
	seen.Digest = d
	return d, seen, err
}

// hashOf hashes the file at full (p in the context), whose lstat is fi.
func hashOf(full, p string, fi fs.FileInfo, buf []byte) (string, error) {
	h := sha256.New()
	switch m := fi.Mode(); {
	case m.IsRegular():
		fmt.Fprintf(h, "file exec=%t\n", m.Perm()&0o100 != 0)
		f, err := rootfs.OpenFile(full, os.O_RDONLY, 0)
		if err != nil {
			return "", err
		}
		_, err = io.CopyBuffer(h, struct{ io.Reader }{f}, buf) // not f's WriteTo, which allocates
		f.Close()
		if err != nil {
			return "", fmt.Errorf("hashing %s: %w", p, err)
		}
	case m&fs.ModeSymlink != 0:
		target, err := os.Readlink(full)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "symlink\n%s", target)
	case m.IsDir():
		fmt.Fprintf(h, "dir\n")
	default:
		fmt.Fprintf(h, "special %v\n", m.Type())
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// Platform is the platform of the step's stage, from its definition (""
// if it names none).
func (in *Inputs) Platform() string {
	var d struct {
		Platform string `json:"platform"`
	}
	_ = json.Unmarshal([]byte(in.Step), &d)
	return d.Platform
}

// Def is the canonical form of a step's expanded definition: what goes
// into Inputs.Step, encoded as JSON. A secret's content is never part of
// it, only the mount's id and target.
type Def struct {
	Text     string   `json:"text"`
	Kind     string   `json:"kind"`
	Argv     []string `json:"argv,omitempty"`
	Network  string   `json:"network,omitempty"`
	Env      []string `json:"env,omitempty"`
	Mounts   []string `json:"mounts,omitempty"`
	Sources  []string `json:"sources,omitempty"`
	To       string   `json:"to,omitempty"`
	Owner    string   `json:"owner,omitempty"`
	Mode     string   `json:"mode,omitempty"`
	Content  string   `json:"content,omitempty"` // a file step's, its sha256
	From     string   `json:"from,omitempty"`    // a stage's layer chain, or an image digest
	Epoch    string   `json:"epoch,omitempty"`
	Platform string   `json:"platform,omitempty"` // the stage's
	// No compression: it is how the output encodes a result, not part of
	// it (a cached layer of another compression is re-encoded, see
	// build/output.go). Keys made with one differ from these, so such
	// entries simply miss: no key version change is needed.
}
