package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Host files the init files are made from; variables so tests can point
// them elsewhere.
var (
	hostHosts      = "/etc/hosts"
	hostResolvConf = "/etc/resolv.conf"
)

// noneResolvConf is /etc/resolv.conf with network none: no server is
// reachable, so none is listed and lookups fail at once.
const noneResolvConf = "# strata: network none, no name servers\n"

// writeInitFiles writes the container's /etc/hosts and /etc/resolv.conf
// into dir (outside the rootfs) and returns their paths.
//
// hosts: localhost and the hostname, plus the host's entries with host
// networking. resolv.conf: the host's with host networking, else one with no
// name server.
func writeInitFiles(dir string, o Options) (initFiles, error) {
	f := initFiles{
		Hosts:      filepath.Join(dir, "hosts"),
		ResolvConf: filepath.Join(dir, "resolv.conf"),
	}
	var hosts bytes.Buffer
	fmt.Fprintf(&hosts, "127.0.0.1\tlocalhost %s\n::1\tlocalhost ip6-localhost ip6-loopback\n", o.Hostname)
	resolv := []byte(noneResolvConf)
	if o.Network == NetworkHost {
		b, err := readOptional(hostHosts)
		if err != nil {
			return f, err
		}
		hosts.Write(b)
		if resolv, err = readOptional(hostResolvConf); err != nil {
			return f, err
		}
	}
	for _, w := range []struct {
		name string
		data []byte
	}{
		{f.Hosts, hosts.Bytes()},
		{f.ResolvConf, resolv},
	} {
		// 0644 whatever strata's umask: a non-root step reads them.
		if err := errors.Join(os.WriteFile(w.name, w.data, 0o644), os.Chmod(w.name, 0o644)); err != nil {
			return f, fmt.Errorf("writing init file: %w", err)
		}
	}
	return f, nil
}

// readOptional returns the content of the host file name, or nothing when
// the host has none.
func readOptional(name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading host %s: %w", name, err)
	}
	return b, nil
}
