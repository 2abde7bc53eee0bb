package commit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stratabuild/strata/internal/inputfile"
)

// layoutIndex is a layout's index.json as read: its fields are kept as
// they were and its descriptors whole (only re-indented), so that adding an image
// changes nothing else a user or another tool put there.
type layoutIndex struct {
	fields    map[string]json.RawMessage
	manifests []json.RawMessage
}

// readIndex reads dir/index.json; a missing one is an empty index.
func readIndex(dir string) (*layoutIndex, error) {
	path := filepath.Join(dir, "index.json")
	ix := &layoutIndex{fields: map[string]json.RawMessage{}}
	data, err := inputfile.Read(path, inputfile.Options{Max: maxIndexFile, What: "OCI index"})
	if errors.Is(err, fs.ErrNotExist) {
		return ix, nil
	}
	if err != nil {
		return nil, err
	}
	bad := func(why string) error {
		return fmt.Errorf("%s is not a valid OCI index (%s); fix it, or choose another directory", path, why)
	}
	if err := json.Unmarshal(data, &ix.fields); err != nil {
		return nil, bad(jsonErr(err))
	}
	var version int
	if err := json.Unmarshal(ix.fields["schemaVersion"], &version); err != nil || version != 2 {
		return nil, bad("want schemaVersion 2")
	}
	if m, ok := ix.fields["manifests"]; ok && !bytes.Equal(m, []byte("null")) {
		if err := json.Unmarshal(m, &ix.manifests); err != nil {
			return nil, bad("manifests: " + jsonErr(err))
		}
	}
	return ix, nil
}

// jsonErr words a JSON decoding error without Go type names.
func jsonErr(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	}
	return "unexpected JSON structure"
}

// add lists desc once per name in refNames, or once unnamed. A
// descriptor already listed under one of those names is dropped (the name
// moves to the new image, as skopeo does), and so is an unnamed one of
// the same digest when the new one is unnamed.
func (ix *layoutIndex) add(desc v1.Descriptor, refNames []string) error {
	kept := ix.manifests[:0:0]
	for _, raw := range ix.manifests {
		var old struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		}
		_ = json.Unmarshal(raw, &old) // keep what cannot be read as it is
		name, named := old.Annotations[ocispec.AnnotationRefName]
		switch {
		case named && slices.Contains(refNames, name):
		case !named && len(refNames) == 0 && old.Digest == desc.Digest.String():
		default:
			kept = append(kept, raw)
		}
	}
	news := []v1.Descriptor{desc}
	if len(refNames) > 0 {
		news = news[:0]
		for _, r := range refNames {
			d := desc
			d.Annotations = map[string]string{ocispec.AnnotationRefName: r}
			news = append(news, d)
		}
	}
	for _, d := range news {
		raw, err := json.Marshal(d)
		if err != nil {
			return err
		}
		kept = append(kept, raw)
	}
	ix.manifests = kept
	return nil
}

// write replaces dir/index.json with ix in one rename, synced.
func (ix *layoutIndex) write(dir string) error {
	fields := map[string]json.RawMessage{}
	for k, v := range ix.fields {
		fields[k] = v
	}
	fields["schemaVersion"] = json.RawMessage("2")
	if _, ok := fields["mediaType"]; !ok {
		fields["mediaType"] = json.RawMessage(`"` + ocispec.MediaTypeImageIndex + `"`)
	}
	manifests, err := json.Marshal(ix.manifests)
	if err != nil {
		return err
	}
	if len(ix.manifests) == 0 {
		manifests = []byte("[]")
	}
	fields["manifests"] = manifests
	data, err := json.MarshalIndent(fields, "", "  ")
	if err != nil {
		return err
	}
	return ReplaceFile(filepath.Join(dir, "index.json"), append(data, '\n'))
}
