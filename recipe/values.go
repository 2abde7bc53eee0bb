package recipe

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// ParseMode parses a permission mode written in octal ("0644", "644",
// "0o644"), at most 07777.
func ParseMode(s string) (os.FileMode, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O")
	if t == "" {
		return 0, fmt.Errorf("bad mode %q: want octal digits such as \"0644\"", s)
	}
	n, err := strconv.ParseUint(t, 8, 32)
	if err != nil {
		return 0, fmt.Errorf("bad mode %q: want octal digits such as \"0644\"", s)
	}
	if n > 0o7777 {
		return 0, fmt.Errorf("bad mode %q: more than 07777", s)
	}
	m := os.FileMode(n & 0o777)
	if n&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if n&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if n&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m, nil
}

var namePart = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*\$?$`)

// parseID parses a user or group: a number gives its id, a name gives -1.
func parseID(s, what string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("empty %s", what)
	}
	if s[0] >= '0' && s[0] <= '9' {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n > 1<<32-2 {
			return 0, fmt.Errorf("bad %s %q: want a name or a number below 4294967295", what, s)
		}
		return int(n), nil
	}
	if len(s) > 256 || !namePart.MatchString(s) {
		return 0, fmt.Errorf("bad %s %q: want a name or a number", what, s)
	}
	return -1, nil
}

// ParseOwner parses "user", "user:group", "uid" or "uid:gid".
func ParseOwner(s string) (Owner, error) {
	user, group, hasGroup := strings.Cut(s, ":")
	o := Owner{User: user, Group: group, UID: -1, GID: -1}
	var err error
	if o.UID, err = parseID(user, "user"); err != nil {
		return Owner{}, fmt.Errorf("bad owner %q: %w", s, err)
	}
	if hasGroup {
		if o.GID, err = parseID(group, "group"); err != nil {
			return Owner{}, fmt.Errorf("bad owner %q: %w", s, err)
		}
	}
	return o, nil
}

// checkUser validates a user: setting, "name", "uid", "name:group" or "uid:gid".
func checkUser(s string) error {
	_, err := ParseOwner(s)
	if err != nil {
		return fmt.Errorf("bad user %q: want a name or uid, optionally :group or :gid", s)
	}
	return nil
}

// ParsePort parses "8080", "8080/tcp", "53/udp" or "9/sctp".
func ParsePort(s string) (Port, error) {
	num, proto, hasProto := strings.Cut(s, "/")
	p := Port{Proto: "tcp"}
	if hasProto {
		p.Proto = strings.ToLower(proto)
		switch p.Proto {
		case "tcp", "udp", "sctp":
		default:
			return Port{}, fmt.Errorf("bad port %q: protocol must be tcp, udp or sctp", s)
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || n > 65535 || num[0] == '+' {
		return Port{}, fmt.Errorf("bad port %q: want a number from 1 to 65535, optionally /tcp, /udp or /sctp", s)
	}
	p.Number = n
	return p, nil
}

// signals are the Linux signal names by number (1..31).
var signals = [...]string{1: "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1",
	"SEGV", "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU",
	"URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS"}

var signalAliases = map[string]string{"IOT": "ABRT", "POLL": "IO", "CLD": "CHLD"}

const sigRTMin, sigRTMax = 34, 64

func signalName(n int) string {
	switch {
	case n >= 1 && n < len(signals):
		return "SIG" + signals[n]
	case n == sigRTMin:
		return "SIGRTMIN"
	case n == sigRTMax:
		return "SIGRTMAX"
	case n > sigRTMin && n <= (sigRTMin+sigRTMax)/2:
		return "SIGRTMIN+" + strconv.Itoa(n-sigRTMin)
	case n > sigRTMin && n < sigRTMax:
		return "SIGRTMAX-" + strconv.Itoa(sigRTMax-n)
	}
	return ""
}

// ParseSignal normalises a Linux signal written "SIGTERM", "TERM", "term",
// "15" or "SIGRTMIN+3" to its name ("SIGTERM", "SIGRTMIN+3").
func ParseSignal(s string) (string, error) {
	bad := fmt.Errorf("bad signal %q: want a Linux signal name or number, such as SIGTERM, TERM or 15", s)
	if s == "" {
		return "", bad
	}
	if s[0] >= '0' && s[0] <= '9' {
		n, err := strconv.Atoi(s)
		if err != nil || signalName(n) == "" {
			return "", bad
		}
		return signalName(n), nil
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if a, ok := signalAliases[name]; ok {
		name = a
	}
	for n := 1; n <= sigRTMax; n++ {
		if signalName(n) == "SIG"+name {
			return "SIG" + name, nil
		}
	}
	return "", bad
}

var archAliases = map[string][2]string{
	"x86_64": {"amd64", ""}, "x86-64": {"amd64", ""}, "aarch64": {"arm64", ""},
	"i386": {"386", ""}, "i686": {"386", ""}, "armhf": {"arm", "v7"}, "armel": {"arm", "v6"},
}

var archVariants = map[string][]string{
	"amd64": {"", "v1", "v2", "v3", "v4"}, "arm64": {"", "v8", "v9"}, "arm": {"", "v5", "v6", "v7", "v8"},
	"386": {""}, "ppc64le": {""}, "s390x": {""}, "riscv64": {""}, "mips64le": {""}, "loong64": {""},
}

// ParsePlatform parses and normalises "os/arch[/variant]" ("linux/amd64",
// "linux/arm/v7", "linux/aarch64" → linux/arm64). The OS must be linux:
// strata runs steps in Linux containers.
func ParsePlatform(s string) (Platform, error) {
	parts := strings.Split(strings.ToLower(s), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return Platform{}, fmt.Errorf("bad platform %q: want os/arch[/variant], such as linux/amd64", s)
	}
	p := Platform{OS: parts[0], Arch: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	if p.OS != "linux" {
		return Platform{}, fmt.Errorf("bad platform %q: strata builds linux images only", s)
	}
	if a, ok := archAliases[p.Arch]; ok {
		p.Arch = a[0]
		if p.Variant == "" {
			p.Variant = a[1]
		}
	}
	variants, ok := archVariants[p.Arch]
	if !ok {
		return Platform{}, fmt.Errorf("bad platform %q: unknown architecture %q (want one of %s)", s, p.Arch, strings.Join(sortedCopy(mapKeys(archVariants)), ", "))
	}
	if p.Variant != "" && p.Variant[0] != 'v' {
		p.Variant = "v" + p.Variant
	}
	if !contains(variants, p.Variant) {
		return Platform{}, fmt.Errorf("bad platform %q: unknown variant %q of %s", s, p.Variant, p.Arch)
	}
	p.Variant = DefaultVariant(p.Arch, p.Variant)
	return p, nil
}

// DefaultVariant is variant of arch as containerd normalises it: amd64's
// v1 and arm64's v8 are no variant, arm's no variant is v7.
func DefaultVariant(arch, variant string) string {
	switch {
	case arch == "amd64" && variant == "v1", arch == "arm64" && variant == "v8":
		return ""
	case arch == "arm" && variant == "":
		return "v7"
	}
	return variant
}

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}
