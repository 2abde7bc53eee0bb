package layers

import (
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/internal/rootfs"
)

// A diff of many small files mostly waits for syscalls: an lstat, an
// xattr listing, the lower dirs' lstats, an open and a read per entry. A
// prefetcher makes them for the entries of one upper dir on other
// goroutines, a bounded number of entries ahead of walk, which still
// writes the tar in order, alone.
const (
	prefetchAhead   = 64       // entries read ahead of walk, at most
	prefetchContent = 64 << 10 // the largest file whose content is read ahead
	// prefetchBudget is the most file content the prefetchers of one
	// differ hold at once, those of all the dirs walk is in together, so
	// that it does not grow with the depth of the tree. (What a dir read
	// ahead before walk went down into a subdir holds its share meanwhile.)
	prefetchBudget = 4 << 20
)

// prefetchMin is the fewest entries a dir has for walk to read ahead (a
// variable for the tests).
var prefetchMin = 8

// fetched is an entry of an upper dir looked up ahead of walk.
type fetched struct {
	done chan struct{} // closed once looked is set
	looked
}

type prefetcher struct {
	budget *aheadBudget
	ring   []fetched     // entry i is in ring[i%len(ring)]
	tokens chan struct{} // one per entry that may be read ahead of walk
	stop   chan struct{}
	wg     sync.WaitGroup
}

// prefetch starts reading ahead the entries ents of the upper dir abs,
// whose lower dirs are lowers; nil when the dir is too small to gain. The
// caller calls get for every entry in order, then close.
func (d *differ) prefetch(abs string, ents []os.DirEntry, lowers []string) *prefetcher {
	if len(ents) < prefetchMin {
		return nil
	}
	workers := min(max(runtime.GOMAXPROCS(0), 2), 4)
	ahead := min(len(ents), prefetchAhead)
	p := &prefetcher{budget: &d.ahead, ring: make([]fetched, ahead), tokens: make(chan struct{}, ahead), stop: make(chan struct{})}
	for i := range p.ring {
		p.ring[i].done = make(chan struct{})
		p.tokens <- struct{}{}
	}
	// A worker that took a token claims the next entry: walk has taken
	// all but the len(ring) entries before it, whose slots are free.
	var next atomic.Int64
	for range workers {
		p.wg.Go(func() {
			for {
				select {
				case <-p.stop:
					return
				case <-p.tokens:
				}
				i := int(next.Add(1)) - 1
				if i >= len(ents) {
					return
				}
				f := &p.ring[i%len(p.ring)]
				f.looked = d.look(abs, ents[i].Name(), lowers)
				if f.upErr == nil && f.lowErr == nil && f.low == nil && !d.o.TrimOnly {
					// A file with a lower one is compared with it on
					// disk, and then often not written; a trim reads
					// no content to write.
					d.readAhead(f.up)
				}
				close(f.done)
			}
		})
	}
	return p
}

// get waits for entry i and hands it over, keeping no reference to it:
// what was read ahead lives until walk is done with the entry, its content
// until written. That content leaves the budget now (walk holds one
// entry's at a time). Then get lets the workers read one more entry ahead.
func (p *prefetcher) get(i int) looked {
	s := &p.ring[i%len(p.ring)]
	<-s.done
	l := s.looked
	*s = fetched{done: make(chan struct{})} // for entry i+len(ring)
	if l.up != nil {
		p.budget.release(int64(len(l.up.content)))
	}
	p.tokens <- struct{}{} // never blocks: at most len(ring) are out
	return l
}

// close stops the workers, waits for them and gives back the budget of
// the entries they read that walk did not take.
func (p *prefetcher) close() {
	close(p.stop)
	p.wg.Wait()
	for i := range p.ring {
		if up := p.ring[i].up; up != nil {
			p.budget.release(int64(len(up.content)))
		}
		p.ring[i] = fetched{}
	}
}

// aheadBudget counts the bytes of file content a differ's prefetchers
// hold, up to prefetchBudget.
type aheadBudget struct {
	held atomic.Int64
	peak atomic.Int64 // the most held at once
}

// reserve takes n bytes of the budget, if it has them.
func (b *aheadBudget) reserve(n int64) bool {
	for {
		h := b.held.Load()
		if h+n > prefetchBudget {
			return false
		}
		if b.held.CompareAndSwap(h, h+n) {
			b.notePeak(h + n)
			return true
		}
	}
}

func (b *aheadBudget) release(n int64) { b.held.Add(-n) }

func (b *aheadBudget) notePeak(h int64) {
	for p := b.peak.Load(); h > p; p = b.peak.Load() {
		if b.peak.CompareAndSwap(p, h) {
			return
		}
	}
}

// readAhead reads the content of e, a small regular file that is no
// hardlink and not sparse, into e.content, if the differ's budget has
// room for it. On any error, or a file that shrank, it leaves e.content
// nil: the tar writer then reads the file itself and reports what it
// finds.
func (d *differ) readAhead(e *entry) {
	size := e.st.Size
	if e.fmt() != unix.S_IFREG || e.st.Nlink > 1 || size == 0 || size > prefetchContent || e.st.Blocks*512 < size {
		return
	}
	if !d.ahead.reserve(size) {
		return
	}
	if e.content = readFile(e.abs, size); e.content == nil {
		d.ahead.release(size)
	}
}

// readFile reads the size bytes of the file abs; nil on an error.
func readFile(abs string, size int64) []byte {
	f, err := rootfs.OpenFile(abs, os.O_RDONLY, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil
	}
	return b
}
