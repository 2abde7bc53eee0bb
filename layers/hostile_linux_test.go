package layers

import (
	"archive/tar"
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
)

var update = flag.Bool("update", false, "rewrite testdata/hostile/*.tar from hostileCases")

// Hostile tars are extracted three levels below the test's base dir (by
// Apply into base/x/y/root, by Unpack into base/store/tmp/unpack-*), so
// "../../../outside" names the dir they must not touch. Absolute targets
// name host paths that must not appear.
const up3 = "../../../"

var hostHostilePaths = []string{"/strata-hostile-escape", "/tmp/strata-hostile-pwned"}

func hostileCases() map[string][]tarEntry {
	sym := func(name, target string) tarEntry {
		return tarEntry{Name: name, Type: tar.TypeSymlink, Mode: 0o777, Link: target}
	}
	link := func(name, target string) tarEntry {
		return tarEntry{Name: name, Type: tar.TypeLink, Mode: 0o644, Link: target}
	}
	return map[string][]tarEntry{
		"dotdot-file":           {fileE(up3+"outside/pwned", "pwned")},
		"dotdot-inside-path":    {dirE("a/"), fileE("a/../../../../outside/pwned", "pwned")},
		"absolute-path":         {fileE("/strata-hostile-escape/pwned", "pwned"), fileE("/../outside/pwned", "pwned")},
		"symlink-dir-escape":    {sym("esc", up3+"outside"), fileE("esc/pwned", "pwned")},
		"symlink-absolute":      {sym("esc", "/tmp"), fileE("esc/strata-hostile-pwned", "pwned")},
		"symlink-then-file":     {sym("victim", up3+"outside/victim"), fileE("victim", "pwned")},
		"symlink-chain":         {sym("a", "b"), sym("b", up3+"outside"), fileE("a/pwned", "pwned")},
		"symlink-loop":          {sym("a", "b"), sym("b", "a"), fileE("a/pwned", "pwned")},
		"symlink-dir-chmod":     {sym("d", up3+"outside/dir"), {Name: "d/", Type: tar.TypeDir, Mode: 0o777}},
		"hardlink-escape":       {link("h", up3+"outside/victim"), fileE("h", "pwned")},
		"hardlink-absolute":     {link("h", "/etc/passwd")},
		"hardlink-via-symlink":  {sym("s", up3+"outside"), link("h", "s/victim")},
		"whiteout-escape":       {whE(up3 + "outside/.wh.victim")},
		"whiteout-via-symlink":  {sym("s", up3+"outside"), whE("s/.wh.victim")},
		"opaque-via-symlink":    {sym("s", up3+"outside/dir"), whE("s/.wh..wh..opq")},
		"whiteout-dotdot-name":  {dirE("a/"), whE("a/.wh.."), whE("a/.wh.../outside")},
		"forged-overlay-xattr":  {{Name: "d/", Type: tar.TypeDir, Mode: 0o755, Xattrs: map[string]string{"trusted.overlay.redirect": "/" + up3 + "outside"}}},
		"forged-whiteout-chr00": {{Name: "etc", Type: tar.TypeChar, Mode: 0o644, Dev: "0:0"}},
		"xattr-on-symlink": {{Name: "l", Type: tar.TypeSymlink, Mode: 0o777, Link: up3 + "outside/victim",
			Xattrs: map[string]string{"trusted.pwn": "1", "user.pwn": "1"}}},
		"xattr-via-symlink-dir": {sym("s", up3+"outside"),
			{Name: "s/victim", Type: tar.TypeReg, Mode: 0o644, Content: "pwned", Xattrs: map[string]string{"trusted.pwn": "1"}}},
	}
}

// TestHostileCorpus extracts every tar of testdata/hostile with Apply and
// with Store.Unpack: each is refused or stays inside its dir.
func TestHostileCorpus(t *testing.T) {
	requireOverlay(t)
	cases := hostileCases()
	dir := filepath.Join("testdata", "hostile")
	if *update {
		must(t, os.MkdirAll(dir, 0o755))
		for name, entries := range cases {
			must(t, os.WriteFile(filepath.Join(dir, name+".tar"), tarOf(t, entries...), 0o644))
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.tar"))
	must(t, err)
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".tar"))
	}
	var want []string
	for name := range cases {
		want = append(want, name)
	}
	sort.Strings(want)
	if diff := cmp.Diff(want, names); diff != "" {
		t.Fatalf("testdata/hostile out of date, run go test -run Hostile -update (-want +got):\n%s", diff)
	}
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name+".tar"))
		must(t, err)
		if !bytes.Equal(b, tarOf(t, cases[name]...)) {
			t.Errorf("testdata/hostile/%s.tar differs from hostileCases, run go test -run Hostile -update", name)
		}
		t.Run(name+"/Apply", func(t *testing.T) {
			base := t.TempDir()
			outside := makeOutside(t, base)
			root := filepath.Join(base, "x", "y", "root")
			mkdir(t, root, 0o755)
			err := Apply(t.Context(), root, bytes.NewReader(b))
			assertContained(t, base, outside, err, "x")
		})
		t.Run(name+"/Unpack", func(t *testing.T) {
			base := t.TempDir()
			outside := makeOutside(t, base)
			s, err := OpenStore(filepath.Join(base, "store"), nil)
			must(t, err)
			_, err = s.Unpack(t.Context(), digest.FromBytes(b), bytes.NewReader(b))
			assertContained(t, base, outside, err, "store")
		})
	}
}

func makeOutside(t *testing.T, base string) map[string]node {
	write(t, base+"/outside/victim", "safe", 0o644)
	write(t, base+"/outside/dir/keep", "keep", 0o644)
	mkdir(t, base+"/outside/dir", 0o750)
	return scan(t, base+"/outside")
}

func assertContained(t *testing.T, base string, outside map[string]node, err error, inside string) {
	t.Helper()
	if err != nil {
		t.Logf("refused: %v", err)
	}
	if diff := cmp.Diff(outside, scan(t, base+"/outside")); diff != "" {
		t.Errorf("extraction changed a dir outside its root (-before +after):\n%s", diff)
	}
	ents, err2 := os.ReadDir(base)
	must(t, err2)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if diff := cmp.Diff([]string{"outside", inside}, got); diff != "" {
		t.Errorf("extraction wrote next to its root (-want +got):\n%s", diff)
	}
	for _, p := range hostHostilePaths {
		if _, err := os.Lstat(p); err == nil {
			os.RemoveAll(p)
			t.Errorf("extraction created %s on the host", p)
		}
	}
}
