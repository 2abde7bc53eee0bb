package recipe

import (
	"path"

	"go.yaml.in/yaml/v3"
)

// image decodes the `image:` section. It sees the args and the top-level
// env only; a top-level env value that depends on the base image's env is
// not visible to it.
func (d *decoder) image(top *mapping, tl *topLevel) Image {
	var img Image
	n := top.get("image")
	if n == nil {
		return img
	}
	m := d.mapping(n, "", "image")
	if m == nil {
		return img
	}
	img.Pos = d.pos(m.node)
	d.checkKeys(m, imageKeys, "", "image")

	sc := tl.argScope.clone()
	if en := top.get("env"); en != nil {
		open := sc.clone()
		open.open = true
		saved := d.unresolved
		vars, known := d.env(en, open, "", "env")
		d.unresolved = saved
		for i, v := range vars {
			if known[i] {
				sc.vars[v.Name] = value{s: v.Value, known: true}
			}
		}
	}
	const where = "image"
	list := func(key string) []string {
		kn := m.get(key)
		if kn == nil {
			return nil
		}
		items, ok := d.scalarList(kn, where, key, false)
		if !ok {
			return nil
		}
		return d.strs(items, sc, where, key)
	}
	img.Entrypoint = list("entrypoint")
	img.Cmd = list("cmd")
	img.Labels = d.stringMap(m.get("labels"), sc, where, "labels")
	img.Annotations = d.stringMap(m.get("annotations"), sc, where, "annotations")
	if en := m.get("expose"); en != nil {
		items, _ := d.scalarList(en, where, "expose", false)
		seen := map[Port]bool{}
		for _, it := range items {
			v, ok := d.expand(it, it.Value, sc, where)
			if !ok {
				continue
			}
			p, err := ParsePort(v)
			if err != nil {
				d.errorf(it, where, "expose: %v", err)
				continue
			}
			if !seen[p] {
				seen[p] = true
				img.Expose = append(img.Expose, p)
			}
		}
	}
	if vn := m.get("volumes"); vn != nil {
		items, _ := d.scalarList(vn, where, "volumes", false)
		for _, it := range items {
			v, ok := d.expand(it, it.Value, sc, where)
			if !ok {
				continue
			}
			if !path.IsAbs(v) {
				d.errorf(it, where, "volumes: %q is not an absolute path", v)
				continue
			}
			img.Volumes = append(img.Volumes, path.Clean(v))
		}
	}
	if sn := m.get("stop-signal"); sn != nil {
		if v, ok := d.str(sn, sc, where, "stop-signal"); ok {
			sig, err := ParseSignal(v)
			if err != nil {
				d.errorf(sn, where, "stop-signal: %v", err)
			}
			img.StopSignal = sig
		}
	}
	return img
}

// stringMap decodes a mapping of strings, expanding the values.
func (d *decoder) stringMap(n *yaml.Node, sc *scope, where, what string) map[string]string {
	if n == nil {
		return nil
	}
	m := d.mapping(n, where, what)
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m.order))
	for _, k := range m.order {
		vn := m.fields[k].val
		s, ok := d.scalar(vn, where, what+": "+k)
		if !ok {
			continue
		}
		d.warnBare(d.node(vn), s, sc, where, what+": "+k, "")
		v, _ := d.expand(d.node(vn), s, sc, where)
		out[k] = v
	}
	if len(out) == 0 {
		return map[string]string{}
	}
	return out
}
