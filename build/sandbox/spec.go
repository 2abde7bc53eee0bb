package sandbox

import (
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// specVersion is the runtime-spec version written to config.json. Debian-era
// runtimes (runc 1.1, crun 1.8) reject 1.2.0 and later.
const specVersion = "1.0.2"

// cgroupParent is the cgroup (in every hierarchy) under which each
// container gets its own, /strata/<id>. The runtime makes it; it stays,
// empty between builds (as docker's /docker does): removing it when a
// build's runs were done raced with other builds' runtimes, which made it
// and then failed to make their container's cgroup under it.
const cgroupParent = "strata"

// defaultCaps is docker's default capability set (CapEff 0xa80425fb).
var defaultCaps = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FSETID",
	"CAP_FOWNER",
	"CAP_MKNOD",
	"CAP_NET_RAW",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETFCAP",
	"CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT",
	"CAP_KILL",
	"CAP_AUDIT_WRITE",
}

// maskedPaths and readonlyPaths are docker's and containerd's defaults.
var (
	maskedPaths = []string{
		"/proc/acpi",
		"/proc/asound",
		"/proc/interrupts",
		"/proc/kcore",
		"/proc/keys",
		"/proc/latency_stats",
		"/proc/timer_list",
		"/proc/timer_stats",
		"/proc/sched_debug",
		"/proc/scsi",
		"/sys/firmware",
		"/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{
		"/proc/bus",
		"/proc/fs",
		"/proc/irq",
		"/proc/sys",
		"/proc/sysrq-trigger",
	}
)

// initFiles are the host files bind-mounted read-only over /etc/hosts and
// /etc/resolv.conf, as docker BuildKit does: a step's write to them fails
// (EROFS) rather than vanishing, and they are never committed. /etc/hostname
// is the rootfs's own, as in BuildKit: a step may write it and the write is
// committed; the step's hostname is the UTS namespace's, Options.Hostname.
type initFiles struct {
	Hosts, ResolvConf string
}

// standardMounts are the filesystems every container gets, docker's set.
func standardMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}

// mountTargets lists every mount destination of a run whose absence in the
// rootfs makes the runtime create a stub there. Targets inside /dev, /proc
// and /sys land in those filesystems, not the rootfs.
func mountTargets(o Options) []string {
	t := []string{"/proc", "/dev", "/sys", "/etc/hosts", "/etc/resolv.conf"}
	for _, m := range o.Mounts {
		t = append(t, m.Target)
	}
	return t
}

// buildSpec returns the OCI runtime config for o (defaults applied), running
// as u, with the init files in f.
func buildSpec(o Options, u execUser, f initFiles) *specs.Spec {
	caps := slices.Clone(defaultCaps)
	s := &specs.Spec{
		Version: specVersion,
		Root:    &specs.Root{Path: o.Rootfs},
		Process: &specs.Process{
			Args: o.Args,
			Env:  processEnv(o.Env, u),
			Cwd:  o.Cwd,
			User: specs.User{UID: u.UID, GID: u.GID, AdditionalGids: u.Groups},
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  caps,
				Effective: caps,
				Permitted: caps,
			},
			// no_new_privs stays off, as in docker's and BuildKit's RUN:
			// a setuid-root program (sudo, su) or one with file
			// capabilities (ping) gains them in a step; the capability
			// bounding set and seccomp profile still bound what it gains.
			NoNewPrivileges: false,
		},
		Hostname: o.Hostname,
		Mounts:   standardMounts(),
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
			},
			// Deny all devices; runc appends its default allow rules
			// (null, zero, full, random, urandom, tty, ptmx, pts) and
			// creates those device nodes in /dev.
			Resources:     &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
			CgroupsPath:   "/" + cgroupParent + "/" + o.ID,
			MaskedPaths:   maskedPaths,
			ReadonlyPaths: readonlyPaths,
		},
	}
	if o.Network != NetworkHost {
		// runc brings up lo in a network namespace it creates.
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	for _, m := range []struct{ dst, src string }{
		{"/etc/hosts", f.Hosts},
		{"/etc/resolv.conf", f.ResolvConf},
	} {
		// BuildKit's options: read-only, nosuid, noexec, nodev.
		s.Mounts = append(s.Mounts, specs.Mount{Destination: m.dst, Type: "bind", Source: m.src,
			Options: []string{"nosuid", "noexec", "nodev", "rbind", "rprivate", "ro"}})
	}
	// Parents first, as BuildKit mounts them: a tmpfs at /a/b/c listed
	// before a cache at /a would be hidden by it.
	mounts := slices.Clone(o.Mounts)
	slices.SortStableFunc(mounts, func(a, b Mount) int {
		return strings.Count(filepath.Clean(a.Target), "/") - strings.Count(filepath.Clean(b.Target), "/")
	})
	for _, m := range mounts {
		s.Mounts = append(s.Mounts, specMount(m))
	}
	return s
}

func specMount(m Mount) specs.Mount {
	sm := specs.Mount{Destination: filepath.Clean(m.Target), Type: m.Type}
	switch m.Type {
	case "bind":
		sm.Source = m.Source
		sm.Options = []string{"rbind", "rprivate"}
	case "tmpfs":
		sm.Source = "tmpfs"
		sm.Options = []string{"nosuid", "nodev"}
	}
	if m.ReadOnly {
		sm.Options = append(sm.Options, "ro")
	}
	sm.Options = append(sm.Options, m.Options...)
	return sm
}

// processEnv adds PATH and HOME to env when missing, as docker does.
func processEnv(env []string, u execUser) []string {
	out := slices.Clone(env)
	has := func(k string) bool {
		return slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, k+"=") })
	}
	if !has("PATH") {
		out = append(out, "PATH="+DefaultPath)
	}
	if !has("HOME") {
		out = append(out, "HOME="+u.Home)
	}
	return out
}
