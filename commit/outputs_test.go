package commit_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stratabuild/strata/commit"
)

func TestCheckDistinctFiles(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("img.tar", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("img.tar", "link.tar"); err != nil {
		t.Fatal(err)
	}
	if err := os.Link("img.tar", "hard.tar"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir("sub", 0o755); err != nil {
		t.Fatal(err)
	}
	archive := commit.NamedFile{What: "-o type=docker,dest=img.tar", Path: "img.tar"}
	layout := commit.NamedFile{What: "-o type=oci,dest=sub/out", Path: "sub/out", Layout: true}
	for _, tc := range []struct {
		name  string
		files []commit.NamedFile
		want  string
	}{
		{"distinct", []commit.NamedFile{archive, {What: "--iidfile", Path: "iid"}, {What: "--metadata-file", Path: "meta.json"}}, ""},
		{"same name", []commit.NamedFile{archive, {What: "--iidfile", Path: "img.tar"}},
			"-o type=docker,dest=img.tar and --iidfile name the same file img.tar: give each its own"},
		{"cleaned", []commit.NamedFile{{What: "--iidfile", Path: "new/x"}, {What: "--metadata-file", Path: "sub/../new/./x"}},
			"--iidfile and --metadata-file name the same file sub/../new/./x: give each its own"},
		{"absolute", []commit.NamedFile{archive, {What: "--iidfile", Path: filepath.Join(dir, "img.tar")}},
			"-o type=docker,dest=img.tar and --iidfile name the same file " + filepath.Join(dir, "img.tar") + ": give each its own"},
		{"link", []commit.NamedFile{archive, {What: "--iidfile", Path: "link.tar"}},
			"-o type=docker,dest=img.tar and --iidfile name the same file link.tar: give each its own"},
		{"hard link", []commit.NamedFile{archive, {What: "--iidfile", Path: "hard.tar"}},
			"-o type=docker,dest=img.tar and --iidfile name the same file hard.tar: give each its own"},
		{"in a layout", []commit.NamedFile{layout, {What: "--iidfile", Path: "sub/out/index.json"}, {What: "--metadata-file", Path: "sub/out/oci-layout"},
			{What: "-o type=docker,dest=sub/out/blobs/sha256/x", Path: "sub/out/blobs/sha256/x"}},
			"--iidfile would overwrite the OCI layout's own index.json that -o type=oci,dest=sub/out writes: give it a path outside sub/out\n" +
				"--metadata-file would overwrite the OCI layout's own oci-layout that -o type=oci,dest=sub/out writes: give it a path outside sub/out\n" +
				"-o type=docker,dest=sub/out/blobs/sha256/x would overwrite the OCI layout's own blobs that -o type=oci,dest=sub/out writes: give it a path outside sub/out"},
		{"a layout in a layout", []commit.NamedFile{layout, {What: "-o type=oci,dest=sub/out/blobs", Path: "sub/out/blobs", Layout: true}, {What: "-o type=oci,dest=sub/out/more", Path: "sub/out/more", Layout: true}},
			"-o type=oci,dest=sub/out/blobs is inside the OCI layout -o type=oci,dest=sub/out writes: give each layout a directory of its own\n" +
				"-o type=oci,dest=sub/out/more is inside the OCI layout -o type=oci,dest=sub/out writes: give each layout a directory of its own"},
		{"beside a layout's files", []commit.NamedFile{layout, {What: "--metadata-file", Path: "sub/out/meta.json"}, {What: "--iidfile", Path: "sub/index.json"}}, ""},
		{"device twice", []commit.NamedFile{{What: "--iidfile", Path: "/dev/null"}, {What: "--metadata-file", Path: "/dev/null"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := commit.CheckDistinctFiles(tc.files)
			if got := ""; err != nil {
				got = err.Error()
				if got != tc.want {
					t.Errorf("CheckDistinctFiles(%v) = %q, want %q", tc.files, got, tc.want)
				}
			} else if tc.want != "" {
				t.Errorf("CheckDistinctFiles(%v) = nil, want %q", tc.files, tc.want)
			}
		})
	}
}

// TestCheckOutputsStdout: dest=-, buildx's stdout, is refused with the
// reason, not taken for a file or a directory named "-".
func TestCheckOutputsStdout(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, tc := range []struct {
		out  commit.Output
		want string
	}{
		{commit.Output{Type: commit.OutputOCI, Dest: "-"}, "-o type=oci,dest=-: an OCI layout is a directory, which cannot go to stdout (dest=-): give a directory, or a docker archive with type=docker,dest=FILE"},
		{commit.Output{Type: commit.OutputDocker, Dest: "-"}, "-o type=docker,dest=-: strata's stdout carries the image digest, so the archive cannot go there (dest=-): give a file, or dest=/dev/stdout to write it before the digest"},
		{commit.Output{Type: commit.OutputOCI, Dest: "./-"}, ""},
	} {
		err := commit.CheckOutputs(context.Background(), []commit.Output{tc.out}, true)
		if got := fmt.Sprint(err); tc.want == "" && err != nil || tc.want != "" && got != tc.want {
			t.Errorf("CheckOutputs(%s) = %v, want %q", tc.out, err, tc.want)
		}
	}
	if _, err := os.Lstat("-"); err == nil {
		t.Error("a file named - was made")
	}
}
