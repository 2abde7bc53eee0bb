package layers

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/internal/rootfs"
	"github.com/stratabuild/strata/internal/testutil"
)

// TestExtractorSameAsArchiveApply extracts each tar into an empty dir
// twice: with what Store.Unpack extracts with, and with containerd's
// archive.Apply given the same filter and whiteouts (what Unpack used
// before). Both must refuse the tar, or leave the same tree: the same
// paths, types, contents, owners, modes, xattrs (the root's too) and
// times, to the nanosecond, of every path. The tars: the hostile corpus,
// cases of names resolved through the layer's own symlinks, replaced
// entries and odd metadata, and random tars over a few names.
func TestExtractorSameAsArchiveApply(t *testing.T) {
	requireOverlay(t)
	compareExtractors(t)
}

// TestRootlessExtractorSameAsArchiveApply compares them in a user
// namespace, as a rootless build extracts: whiteouts made with
// user.overlay.* names, device nodes left out, ids within the maps.
func TestRootlessExtractorSameAsArchiveApply(t *testing.T) {
	if !testutil.InUserNS(t, testutil.SubIDMaps) {
		return
	}
	compareExtractors(t)
}

// TestIdentityNSExtractorSameAsArchiveApply compares them in a user
// namespace that maps every id: strata takes it for the initial one, but
// device nodes cannot be made there, and both leave them out.
func TestIdentityNSExtractorSameAsArchiveApply(t *testing.T) {
	if !testutil.InUserNS(t, testutil.IdentityMaps) {
		return
	}
	compareExtractors(t)
}

// TestExtractorHoldsANameOnce extracts a layer that makes the same names
// again and again: what the extractor keeps of them does not grow with
// the entries (a review found its list of a dir's paths did, ~4 KB a
// long name, so a small compressed layer could exhaust memory).
func TestExtractorHoldsANameOnce(t *testing.T) {
	requireOverlay(t)
	dir := "L" + strings.Repeat("/"+strings.Repeat("n", 250), 3)
	hdrs := []*tar.Header{{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755}}
	for range 1000 {
		hdrs = append(hdrs,
			&tar.Header{Name: dir + "/f", Typeflag: tar.TypeReg, Mode: 0o644},
			&tar.Header{Name: dir + "/s", Typeflag: tar.TypeSymlink, Linkname: "f"},
			&tar.Header{Name: dir + "/d/", Typeflag: tar.TypeDir, Mode: 0o755},
			&tar.Header{Name: dir + "/d", Typeflag: tar.TypeReg, Mode: 0o644})
	}
	root := t.TempDir()
	bud, err := newBudget(root, Limits{})
	must(t, err)
	u, err := newUnpacker(bud)
	must(t, err)
	e := newExtractor(root, u, nil)
	must(t, e.apply(t.Context(), bytes.NewReader(tarOfHeaders(t, hdrs))))
	held := 0
	for _, c := range e.children {
		held += len(c)
	}
	// L and its three subdirs, dir/f, dir/s and dir/d: no more.
	if len(e.kinds) != 7 || held > 7 {
		t.Errorf("after 4,000 entries over 7 paths the extractor holds %d paths and %d children", len(e.kinds), held)
	}
}

func compareExtractors(t *testing.T) {
	tars := map[string][]byte{}
	for name, entries := range hostileCases() {
		tars["hostile/"+name] = tarOf(t, entries...)
	}
	for name, hdrs := range extractCases() {
		tars["case/"+name] = tarOfHeaders(t, hdrs)
	}
	r := rand.New(rand.NewPCG(13, 2026))
	for i := range 400 {
		tars[fmt.Sprintf("random/%03d", i)] = tarOfHeaders(t, randomHeaders(r))
	}
	refused := 0
	for name, b := range tars {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			ref, got := filepath.Join(base, "x", "y", "ref"), filepath.Join(base, "x", "y", "got")
			mkdir(t, ref, 0o700)
			mkdir(t, got, 0o700)
			outside := makeOutside(t, base) // what the hostile tars aim at
			refStart := time.Now()
			refErr := applyReference(t, ref, b)
			gotStart := time.Now()
			gotErr := applyExtract(t, got, b)
			gotEnd := time.Now()
			assertContained(t, base, outside, errors.Join(refErr, gotErr), "x")
			switch {
			case (refErr == nil) != (gotErr == nil):
				t.Errorf("archive.Apply: %v; the extractor: %v\n%s", refErr, gotErr, describeTar(t, b))
			case refErr != nil:
				refused++
			default:
				if diff := cmp.Diff(extractedTree(t, ref, refStart, gotStart), extractedTree(t, got, gotStart, gotEnd)); diff != "" {
					t.Errorf("the trees differ (-archive.Apply +extractor):\n%s\n%s", diff, describeTar(t, b))
				}
			}
		})
	}
	t.Logf("%d tars, %d refused by both", len(tars), refused)
}

// applyReference is what Unpack's extract did before the extractor.
func applyReference(t testing.TB, dir string, b []byte) error {
	must(t, os.Chmod(dir, 0o755))
	bud, err := newBudget(dir, Limits{})
	must(t, err)
	u, err := newUnpacker(bud)
	must(t, err)
	tr, sum := hashing(bytes.NewReader(b), digest.Canonical)
	if _, err := archive.Apply(quietArchive(t.Context()), dir, tr,
		archive.WithConvertWhiteout(u.convertWhiteout), archive.WithFilter(u.filter)); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, tr); err != nil {
		return err
	}
	if sum() != digest.FromBytes(b) {
		return fmt.Errorf("wrong diffID")
	}
	return setTrustedXattrs(dir, u.trusted)
}

func applyExtract(t testing.TB, dir string, b []byte) error {
	bud, err := newBudget(dir, Limits{})
	must(t, err)
	return extract(t.Context(), nil, dir, digest.FromBytes(b), bytes.NewReader(b), bud)
}

// extractedTree is scan's record of every path, with its times, and the
// root's mode and xattrs under "/". A time between from and to, that of
// the extraction, reads "now" (the times of a dir no entry names; the
// kernel's clock for file times lags a few ms behind time.Now).
func extractedTree(t *testing.T, root string, from, to time.Time) map[string]any {
	t.Helper()
	out := map[string]any{}
	clock := func(ts unix.Timespec) string {
		if n := ts.Nano(); n >= from.Add(-50*time.Millisecond).UnixNano() && n <= to.Add(50*time.Millisecond).UnixNano() {
			return "now"
		}
		return time.Unix(0, ts.Nano()).UTC().Format(time.RFC3339Nano)
	}
	// Times first: scan reads files, which sets their atimes.
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		must(t, unix.Lstat(p, &st))
		rel, _ := filepath.Rel(root, p)
		out["times of "+rel] = [2]string{clock(st.Atim), clock(st.Mtim)}
		return nil
	})
	must(t, err)
	delete(out, "times of .") // no entry sets them: the time of the extraction, or of the test
	for p, n := range scan(t, root) {
		out[p] = n
	}
	var st unix.Stat_t
	must(t, unix.Lstat(root, &st))
	x, err := rootfs.Xattrs(root, rootfs.LayerXattr)
	must(t, err)
	out["/"] = node{Mode: st.Mode, UID: st.Uid, GID: st.Gid, Xattrs: x}
	return out
}

func describeTar(t *testing.T, b []byte) string {
	var s string
	for _, e := range readTarLoose(t, b) {
		s += e + "\n"
	}
	return s
}

func readTarLoose(t *testing.T, b []byte) []string {
	tr := tar.NewReader(bytes.NewReader(b))
	var out []string
	for {
		hdr, err := tr.Next()
		if err != nil {
			return out
		}
		out = append(out, fmt.Sprintf("  %c %q -> %q mode %o %d:%d size %d mtime %v xattrs %v",
			hdr.Typeflag, hdr.Name, hdr.Linkname, hdr.Mode, hdr.Uid, hdr.Gid, hdr.Size, hdr.ModTime.UnixNano(), hdr.PAXRecords))
	}
}

// tarOfHeaders writes hdrs, each regular file with its name as content.
func tarOfHeaders(t *testing.T, hdrs []*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		h := *h
		var content []byte
		if h.Typeflag == tar.TypeReg {
			content = []byte("content of " + h.Name)
			h.Size = int64(len(content))
		}
		must(t, tw.WriteHeader(&h))
		_, err := tw.Write(content)
		must(t, err)
	}
	must(t, tw.Close())
	return buf.Bytes()
}

func extractCases() map[string][]*tar.Header {
	at := func(sec int64) time.Time { return time.Unix(sec, 123456789) }
	d := func(name string, mode int64) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: mode, ModTime: at(1e9 + mode)}
	}
	f := func(name string, mode int64) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, ModTime: at(1.1e9 + mode)}
	}
	l := func(name, target string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777, ModTime: at(1.2e9)}
	}
	h := func(name, target string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target, Mode: 0o640, ModTime: at(1.3e9), Uid: 7}
	}
	wh := func(name string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o600, Uid: 3}
	}
	withX := func(hdr *tar.Header, kv ...string) *tar.Header {
		hdr.PAXRecords = map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			hdr.PAXRecords["SCHILY.xattr."+kv[i]] = kv[i+1]
		}
		return hdr
	}
	owned := func(hdr *tar.Header, uid, gid int) *tar.Header { hdr.Uid, hdr.Gid = uid, gid; return hdr }
	timed := func(hdr *tar.Header, atime, mtime time.Time) *tar.Header {
		hdr.AccessTime, hdr.ModTime, hdr.Format = atime, mtime, tar.FormatPAX
		return hdr
	}
	return map[string][]*tar.Header{
		"implicit-parents":        {f("a/b/c/file", 0o644), d("a/b/", 0o711)},
		"dir-after-contents":      {f("usr/bin/x", 0o755), d("usr/bin/", 0o555), d("usr/", 0o700)},
		"merged-usr":              {d("usr/", 0o755), d("usr/lib/", 0o755), l("lib", "usr/lib"), f("lib/x", 0o644), d("lib/sub/", 0o750), f("usr/lib/sub/y", 0o600)},
		"symlink-to-missing-dir":  {l("lib64", "usr/lib64"), f("lib64/ld.so", 0o755), f("usr/lib64/other", 0o644)},
		"absolute-symlink-parent": {d("etc/", 0o755), l("conf", "/etc"), f("conf/x", 0o644), h("conf/y", "etc/x")},
		"symlink-chain-parent":    {d("real/", 0o755), l("one", "two"), l("two", "real"), f("one/f", 0o644), d("one/d/", 0o700)},
		"dotdot-in-names":         {d("a/", 0o755), f("a/../b", 0o644), f("./c", 0o644), d("a/./d/../e/", 0o750)},
		"file-replaced-by-dir":    {f("x", 0o644), d("x/", 0o755), f("x/y", 0o644)},
		"dir-replaced-by-file":    {d("x/", 0o755), f("x/y", 0o644), d("x/z/", 0o700), f("x/z/w", 0o644), f("x", 0o600), f("x2", 0o644)},
		"dir-replaced-by-symlink": {d("x/", 0o755), f("x/y", 0o644), d("t/", 0o700), l("x", "t"), f("x/new", 0o644)},
		"duplicate-file":          {f("x", 0o644), f("x", 0o600)},
		"duplicate-dir":           {d("x/", 0o755), f("x/y", 0o644), d("x/", 0o700)},
		"hardlinks":               {f("a", 0o4755), h("b", "a"), h("c", "./b"), h("d", "/a"), l("s", "a"), h("t", "s")},
		"hardlink-replaced":       {f("a", 0o644), h("b", "a"), f("a", 0o600), h("c", "a")},
		"hardlink-through-link":   {d("dir/", 0o755), f("dir/f", 0o644), l("s", "dir"), h("g", "s/f"), h("k", "s/../dir/f")},
		"hardlink-to-dir":         {d("dir/", 0o755), h("g", "dir")},
		"hardlink-to-root":        {h("g", "..")},
		"hardlink-missing":        {h("g", "nothing")},
		"modes":                   {d("t/", 0o1777), d("g/", 0o2755), f("g/s", 0o6755), f("g/none", 0), d("ro/", 0o555), f("ro/f", 0o444)},
		"owners":                  {owned(d("o/", 0o755), 1000, 1000), owned(f("o/f", 0o4755), 0, 65534), owned(l("o/l", "f"), 33, 33)},
		"xattrs": {withX(d("x/", 0o755), "user.a", "1", "security.b", "2"), withX(f("x/f", 0o644), "user.c", "3"),
			withX(l("x/l", "f"), "user.d", "4"), withX(f("x/t", 0o644), "trusted.keep", "5"),
			withX(&tar.Header{Name: "x/p", Typeflag: tar.TypeFifo, Mode: 0o600}, "user.e", "6")},
		"capability": {owned(withX(f("bin/ping", 0o755), "security.capability",
			string([]byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})), 0, 0)},
		"times": {timed(f("old", 0o644), at(-5e8), at(-1e9)), timed(f("atime-later", 0o644), at(2e9), at(1e9)),
			timed(f("atime-earlier", 0o644), at(1e8), at(1e9)), timed(d("dir/", 0o755), at(3e9), at(1e9)),
			timed(l("link", "old"), at(1e9), at(1.5e9)), f("dir/child", 0o644)},
		"devices": {{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
			{Name: "dev/loop9", Typeflag: tar.TypeBlock, Mode: 0o660, Devmajor: 7, Devminor: 9, Gid: 6},
			{Name: "dev/fifo", Typeflag: tar.TypeFifo, Mode: 0o620}},
		"whiteouts":           {wh("a/.wh.gone"), d("a/", 0o755), wh(".wh.top"), wh("b/c/.wh..wh..opq"), wh(".wh..wh..opq"), f("b/c/kept", 0o644)},
		"whiteout-over-entry": {f("a/x", 0o644), wh("a/.wh.x")},
		"whiteout-via-link":   {d("real/", 0o755), l("s", "real"), wh("s/.wh.gone"), wh("s/.wh..wh..opq")},
		"global-header": {{Name: "pax_global_header", Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "x"}},
			f("after", 0o644)},
		"root-names": {d("./", 0o700), d("/", 0o711), f("/abs", 0o644), d("../", 0o750)},
		// A review found the extractor turning ".x" into "x", unchecked:
		// through a symlink x, out of the root.
		"dot-dir-escape": {d(".x/", 0o755), l("x", "../../../outside"), f(".x/pwned", 0o4755),
			l("x", "/tmp"), f(".x/strata-hostile-pwned", 0o644)},
		"dot-dirs": {d("./.cache/", 0o700), f("./.cache/a", 0o644), f(".cache/b", 0o644), d("cache/", 0o755),
			d(".x/", 0o755), f(".x/a", 0o644), d("..y/", 0o755), f("..y/.z", 0o644), f("a/.wh.b/.wh..wh..opq", 0o644)},
		// archive.Apply sets a dir's times when it makes it and again at
		// the end, by name, which may lead elsewhere by then.
		"dir-times-by-name": {d("a/", 0o755), l("s", "a"), d("s/d/", 0o711), d("s/", 0o750), d("s/d/", 0o700),
			d("b/", 0o755), l("s", "b"), d("s/d/", 0o755)},
	}
}

// randomHeaders makes a tar of a few entries over a few names, of every
// type, with random modes, owners, xattrs and times.
func randomHeaders(r *rand.Rand) []*tar.Header {
	names := []string{"a", "b", "a/b", "a/c", "b/a", "a/b/c", "s", "s/x", "s/y/z", "../a/b", "/b/c",
		".a", ".a/b", "./.a/c", "..b", "..b/.c", ".s/x"}
	targets := []string{"a", "b", "a/b", "/a", "../b", "s", "nothing", "a/b/c", ".", ".a", "..b", ".s"}
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	var hdrs []*tar.Header
	for range 1 + r.IntN(12) {
		h := &tar.Header{Name: pick(names), Mode: []int64{0o755, 0o644, 0o700, 0o4755, 0o1777, 0}[r.IntN(6)],
			Uid: []int{0, 1000, 65534}[r.IntN(3)], Gid: r.IntN(3), ModTime: time.Unix(r.Int64N(4e9)-1e9, r.Int64N(1e9))}
		if r.IntN(4) == 0 {
			h.AccessTime, h.Format = time.Unix(r.Int64N(4e9), 0), tar.FormatPAX
		}
		switch r.IntN(9) {
		case 0, 1:
			h.Typeflag = tar.TypeDir
		case 2, 3:
			h.Typeflag = tar.TypeReg
		case 4:
			h.Typeflag, h.Linkname = tar.TypeSymlink, pick(targets)
		case 5:
			h.Typeflag, h.Linkname = tar.TypeLink, pick(targets)
		case 6:
			h.Typeflag = tar.TypeFifo
		case 7:
			h.Typeflag, h.Name = tar.TypeReg, filepath.Join(filepath.Dir(h.Name), whiteoutPrefix+pick([]string{"a", "b", "c"}))
		case 8:
			h.Typeflag, h.Name = tar.TypeReg, filepath.Join(h.Name, opaqueMarker)
		}
		if r.IntN(5) == 0 {
			h.PAXRecords = map[string]string{"SCHILY.xattr.user.r": "v"}
		}
		hdrs = append(hdrs, h)
	}
	return hdrs
}
