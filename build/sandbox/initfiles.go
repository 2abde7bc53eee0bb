package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// hostResolvConf is the host file copied to the container's /etc/resolv.conf.
// A variable so tests can point it elsewhere.
var hostResolvConf = "/etc/resolv.conf"

// systemdResolvConf lists the upstream servers when the host's
// /etc/resolv.conf points at systemd-resolved's 127.0.0.53 stub, which is
// unreachable from another network namespace.
const systemdResolvConf = "/run/systemd/resolve/resolv.conf"

// writeInitFiles writes the container's /etc/hosts, /etc/resolv.conf and
// /etc/hostname into dir (outside the rootfs) and returns their paths.
//
// hosts: localhost and the hostname on 127.0.0.1, plus the host's entries
// with host networking. resolv.conf: a copy of the host's for both network
// modes (with none, lookups fail at once: no route to any server).
func writeInitFiles(dir string, o Options) (initFiles, error) {
	f := initFiles{
		Hosts:      filepath.Join(dir, "hosts"),
		ResolvConf: filepath.Join(dir, "resolv.conf"),
		Hostname:   filepath.Join(dir, "hostname"),
	}
	var hosts bytes.Buffer
	fmt.Fprintf(&hosts, "127.0.0.1\tlocalhost %s\n::1\tlocalhost ip6-localhost ip6-loopback\n", o.Hostname)
	if o.Network == NetworkHost {
		if b, err := os.ReadFile("/etc/hosts"); err == nil {
			hosts.Write(b)
		}
	}
	resolv, err := readResolvConf()
	if err != nil {
		return f, err
	}
	for _, w := range []struct {
		name string
		data []byte
	}{
		{f.Hosts, hosts.Bytes()},
		{f.ResolvConf, resolv},
		{f.Hostname, []byte(o.Hostname + "\n")},
	} {
		if err := os.WriteFile(w.name, w.data, 0o644); err != nil {
			return f, fmt.Errorf("writing init file: %w", err)
		}
	}
	return f, nil
}

// readResolvConf returns the host's resolver config, or an empty one when the
// host has none.
func readResolvConf() ([]byte, error) {
	b, err := os.ReadFile(hostResolvConf)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading host resolv.conf: %w", err)
	}
	if bytes.Contains(b, []byte("nameserver 127.0.0.53")) {
		if alt, err := os.ReadFile(systemdResolvConf); err == nil {
			return alt, nil
		}
	}
	return b, nil
}
