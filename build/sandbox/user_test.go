package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeIDFiles writes etc/passwd and etc/group into a new rootfs.
func writeIDFiles(t *testing.T, passwd, group string) string {
	t.Helper()
	rootfs := t.TempDir()
	if err := os.Mkdir(filepath.Join(rootfs, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"passwd": passwd, "group": group} {
		if err := os.WriteFile(filepath.Join(rootfs, "etc", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return rootfs
}

func TestLookupOwner(t *testing.T) {
	rootfs := writeIDFiles(t,
		"root:x:0:0:root:/root:/bin/sh\n# comment\n\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\napp:x:1000:1001::/home/app:/bin/sh\n",
		"root:x:0:\nwww-data:x:33:\nstaff:x:50:app\napp:x:1001:\n")
	for _, tc := range []struct {
		spec     string
		uid, gid int
		err      string // substring; "" = no error
	}{
		{spec: "0", uid: 0, gid: 0},
		{spec: "root", uid: 0, gid: 0},
		{spec: "app", uid: 1000, gid: 1001},
		{spec: "www-data", uid: 33, gid: 33},
		{spec: "app:staff", uid: 1000, gid: 50},
		{spec: "app:50", uid: 1000, gid: 50},
		{spec: "1000", uid: 1000, gid: 1000}, // docker COPY --chown: a bare uid is also the gid
		{spec: "1000:staff", uid: 1000, gid: 50},
		{spec: "4242:4343", uid: 4242, gid: 4343},
		{spec: "nobody", err: `user "nobody" is not in the image's /etc/passwd`},
		{spec: "app:nogroup", err: `group "nogroup" is not in the image's /etc/group`},
		{spec: "", err: "want user[:group]"},
		{spec: "app:", err: "want user[:group]"},
		{spec: ":staff", err: "want user[:group]"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			uid, gid, err := LookupOwner(rootfs, tc.spec)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("LookupOwner(%q) = %d, %d, %v; want error containing %q", tc.spec, uid, gid, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("LookupOwner(%q): %v", tc.spec, err)
			}
			if diff := cmp.Diff([2]int{tc.uid, tc.gid}, [2]int{uid, gid}); diff != "" {
				t.Errorf("LookupOwner(%q) uid, gid (-want +got):\n%s", tc.spec, diff)
			}
		})
	}
}

func TestLookupOwnerNoFiles(t *testing.T) {
	rootfs := t.TempDir()
	uid, gid, err := LookupOwner(rootfs, "12:34")
	if err != nil || uid != 12 || gid != 34 {
		t.Errorf("LookupOwner(no files, 12:34) = %d, %d, %v; want 12, 34, nil", uid, gid, err)
	}
	if _, _, err := LookupOwner(rootfs, "app"); err == nil {
		t.Errorf("LookupOwner(no files, app) succeeded; want an unknown user error")
	}
}

func TestLookupUser(t *testing.T) {
	rootfs := writeIDFiles(t,
		"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\nnohome:x:7:7:::\n",
		"root:x:0:\nstaff:x:50:app,other\napp:x:1001:\nwheel:x:10:other\n")
	for _, tc := range []struct {
		spec string
		want execUser
	}{
		{"", execUser{UID: 0, GID: 0, Home: "/root"}},
		{"app", execUser{UID: 1000, GID: 1001, Groups: []uint32{50}, Home: "/home/app"}},
		{"1000", execUser{UID: 1000, GID: 1001, Groups: []uint32{50}, Home: "/home/app"}},
		{"app:staff", execUser{UID: 1000, GID: 50, Home: "/home/app"}},
		{"app:99", execUser{UID: 1000, GID: 99, Home: "/home/app"}},
		{"nohome", execUser{UID: 7, GID: 7, Home: "/"}},
		{"5000", execUser{UID: 5000, GID: 0, Home: "/"}},
		{"5000:wheel", execUser{UID: 5000, GID: 10, Home: "/"}},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := lookupUser(rootfs, tc.spec)
			if err != nil {
				t.Fatalf("lookupUser(%q): %v", tc.spec, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("lookupUser(%q) (-want +got):\n%s", tc.spec, diff)
			}
		})
	}
}

// TestLookupOwnerThroughSymlinks: /etc/passwd and /etc/group that are
// symlinks inside the image — absolute (as Nix-built images link them),
// relative, or /etc itself a link — are read as the container reads them;
// a link leading out of the rootfs reads the rootfs's file, never the
// host's (the host has no /usr/lib/passwd), one leading nowhere is a
// missing file, and a loop is an error.
func TestLookupOwnerThroughSymlinks(t *testing.T) {
	const passwd, group = "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n", "root:x:0:\napp:x:1001:\n"
	for _, tc := range []struct {
		name  string
		links map[string]string // path in the rootfs -> link target
		files string            // where the real files are
		want  string            // "": app is 1000:1001; else an error containing it
	}{
		{"absolute", map[string]string{"etc/passwd": "/usr/lib/passwd", "etc/group": "/usr/lib/group"}, "usr/lib", ""},
		{"relative", map[string]string{"etc/passwd": "../usr/lib/passwd", "etc/group": "../usr/lib/group"}, "usr/lib", ""},
		{"etc itself", map[string]string{"etc": "/real/etc"}, "real/etc", ""},
		{"out of the rootfs", map[string]string{"etc/passwd": "../../../../../../../../usr/lib/passwd", "etc/group": "/../../usr/lib/group"}, "usr/lib", ""},
		{"a loop", map[string]string{"etc/passwd": "../../../../etc/passwd"}, "", "too many levels of symbolic links"},
		{"nowhere", map[string]string{"etc/passwd": "/gone/passwd"}, "", `user "app" is not in the image's /etc/passwd`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.files != "" {
				if err := os.MkdirAll(filepath.Join(root, tc.files), 0o755); err != nil {
					t.Fatal(err)
				}
				for name, content := range map[string]string{"passwd": passwd, "group": group} {
					if err := os.WriteFile(filepath.Join(root, tc.files, name), []byte(content), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			for p, target := range tc.links {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
					t.Fatal(err)
				}
			}
			uid, gid, err := LookupOwner(root, "app")
			switch {
			case tc.want == "" && (err != nil || uid != 1000 || gid != 1001):
				t.Errorf("LookupOwner(app) = %d, %d, %v; want 1000, 1001", uid, gid, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("LookupOwner(app) = %d, %d, %v; want an error containing %q", uid, gid, err, tc.want)
			}
		})
	}
}
