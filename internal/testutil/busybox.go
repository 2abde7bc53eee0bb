package testutil

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BusyboxPath is the static busybox the test base image is made from
// (Debian package busybox-static).
const BusyboxPath = "/bin/busybox"

// BusyboxTag is the ref name of the image in BusyboxLayout.
const BusyboxTag = "latest"

// BusyboxEpoch is the mtime of every file and the created time of the
// busybox image, so the image is the same on every run.
var BusyboxEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// BusyboxEnv is the image's environment.
var BusyboxEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

var busybox struct {
	once  sync.Once
	blobs map[string][]byte // digest hex → content
	index []byte
	err   error
}

// BusyboxLayout writes, into a fresh temp dir, an OCI image layout holding
// one linux/amd64 image tagged BusyboxTag: a single layer with /bin/busybox
// and a symlink per applet in /bin, /etc/passwd and /etc/group (root,
// nobody, app uid 1000), /tmp (1777), /root, /home/app, /var, /usr/bin; Cmd
// [sh]; OCI media types. The image is built once per test process and is
// reproducible. Skips (or fails) if busybox-static is not installed.
func BusyboxLayout(t testing.TB) string {
	t.Helper()
	Require(t, "busybox", func() error { _, err := os.Stat(BusyboxPath); return err },
		"apt-get install -y busybox-static")
	busybox.once.Do(func() { busybox.blobs, busybox.index, busybox.err = buildBusybox() })
	if busybox.err != nil {
		t.Fatalf("building busybox image: %v", busybox.err)
	}
	return writeLayout(t, busybox.blobs, busybox.index)
}

// writeLayout writes an OCI layout of blobs (by digest hex) and index.json
// into a fresh temp dir.
func writeLayout(t testing.TB, blobs map[string][]byte, index []byte) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{
		"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`),
		"index.json": index,
	}
	for hex, b := range blobs {
		files[filepath.Join("blobs", "sha256", hex)] = b
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// BusyboxRef is the oci-layout:// reference to a fresh BusyboxLayout.
func BusyboxRef(t testing.TB) string {
	t.Helper()
	return "oci-layout://" + BusyboxLayout(t) + ":" + BusyboxTag
}

func buildBusybox() (map[string][]byte, []byte, error) {
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, nil, err
	}
	blobs := map[string][]byte{}
	desc, err := busyboxImage(blobs, bin, "amd64")
	if err != nil {
		return nil, nil, err
	}
	desc.Annotations = map[string]string{ocispec.AnnotationRefName: BusyboxTag}
	index, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{desc}})
	return blobs, index, err
}

// busyboxImage puts the blobs of a busybox image of arch, made of the
// busybox binary bin, into blobs and returns its manifest's descriptor.
func busyboxImage(blobs map[string][]byte, bin []byte, arch string) (v1.Descriptor, error) {
	layerTar, err := busyboxTar(bin)
	if err != nil {
		return v1.Descriptor{}, err
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(layerTar); err != nil {
		return v1.Descriptor{}, err
	}
	if err := zw.Close(); err != nil {
		return v1.Descriptor{}, err
	}
	put := func(b []byte) v1.Hash {
		sum := sha256.Sum256(b)
		h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
		blobs[h.Hex] = b
		return h
	}
	diffSum := sha256.Sum256(layerTar)
	created := v1.Time{Time: BusyboxEpoch}
	cfg, err := json.Marshal(v1.ConfigFile{
		Architecture: arch,
		OS:           "linux",
		Created:      created,
		Config:       v1.Config{Env: BusyboxEnv, Cmd: []string{"sh"}},
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{{Algorithm: "sha256", Hex: hex.EncodeToString(diffSum[:])}}},
		History:      []v1.History{{Created: created, CreatedBy: "strata testutil: busybox-static for " + arch}},
	})
	if err != nil {
		return v1.Descriptor{}, err
	}
	manifest, err := json.Marshal(v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: put(cfg), Size: int64(len(cfg))},
		Layers:        []v1.Descriptor{{MediaType: types.OCILayer, Digest: put(gz.Bytes()), Size: int64(gz.Len())}},
	})
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: put(manifest), Size: int64(len(manifest)),
		Platform: &v1.Platform{OS: "linux", Architecture: arch}}, nil
}

// busyboxTar returns the layer tar of the busybox binary bin, entries
// sorted by name; the applets are those of the host's busybox.
func busyboxTar(bin []byte) ([]byte, error) {
	out, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %w", err)
	}
	type entry struct {
		hdr  tar.Header
		data []byte
	}
	dir := func(name string, mode int64, uid int) entry {
		return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid}}
	}
	file := func(name string, mode int64, data []byte) entry {
		return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}, data: data}
	}
	entries := []entry{
		dir("bin", 0o755, 0), dir("etc", 0o755, 0), dir("home", 0o755, 0), dir("home/app", 0o755, 1000),
		dir("root", 0o700, 0), dir("tmp", 0o1777, 0), dir("usr", 0o755, 0), dir("usr/bin", 0o755, 0),
		dir("var", 0o755, 0),
		file("bin/busybox", 0o755, bin),
		file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"+
			"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"+
			"app:x:1000:1000:app:/home/app:/bin/sh\n")),
		file("etc/group", 0o644, []byte("root:x:0:\nnobody:x:65534:\napp:x:1000:\n")),
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" {
			continue
		}
		entries = append(entries, entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777}})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].hdr.Name < entries[j].hdr.Name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		e.hdr.ModTime = BusyboxEpoch
		e.hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(&e.hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
