package layers

import (
	"io"
	"os"
	"path/filepath"
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
)

// prefetchMin is the fewest entries a dir has for walk to read ahead (a
// variable for the tests).
var prefetchMin = 8

// fetched is what walk needs of one entry of an upper dir, read ahead.
type fetched struct {
	done    chan struct{} // closed once the fields are set
	up      *entry
	upErr   error
	low     *entry
	lowDirs []string
	lowErr  error
}

type prefetcher struct {
	items  []fetched
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
	p := &prefetcher{items: make([]fetched, len(ents)), tokens: make(chan struct{}, prefetchAhead), stop: make(chan struct{})}
	for i := range p.items {
		p.items[i].done = make(chan struct{})
	}
	for range prefetchAhead {
		p.tokens <- struct{}{}
	}
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
				f := &p.items[i]
				name := ents[i].Name()
				f.up, f.upErr = d.stat(filepath.Join(abs, name))
				if f.upErr == nil {
					f.low, f.lowDirs, f.lowErr = d.lookupLower(lowers, name)
					if f.lowErr == nil && f.low == nil {
						// A file with a lower one is compared with it
						// on disk, and then often not written.
						readContent(f.up)
					}
				}
				close(f.done)
			}
		})
	}
	return p
}

// get waits for entry i and hands it over, keeping no reference to it:
// what was read ahead lives until walk is done with the entry, its content
// until written. Then it lets the workers read one more entry ahead.
func (p *prefetcher) get(i int) *fetched {
	<-p.items[i].done
	f := p.items[i]
	p.items[i] = fetched{}
	p.tokens <- struct{}{} // never blocks: at most prefetchAhead are out
	return &f
}

// close stops the workers and waits for them.
func (p *prefetcher) close() {
	close(p.stop)
	p.wg.Wait()
}

// readContent reads the content of e, a small regular file that is no
// hardlink and not sparse, into e.content. On any error, or a file that
// shrank, it leaves e.content nil: the tar writer then reads the file
// itself and reports what it finds.
func readContent(e *entry) {
	size := e.st.Size
	if e.fmt() != unix.S_IFREG || e.st.Nlink > 1 || size == 0 || size > prefetchContent || e.st.Blocks*512 < size {
		return
	}
	f, err := rootfs.OpenFile(e.abs, os.O_RDONLY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return
	}
	e.content = b
}
