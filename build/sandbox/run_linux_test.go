package sandbox

import (
	"testing"
)

func TestRunSmoke(t *testing.T) {
	requireRunc(t)
	r := run(t.Context(), t, Options{Rootfs: busybox(t), Args: []string{"sh", "-c", "echo hi; echo err >&2; id; cat /proc/self/status | grep -i cap; ls -la /dev; cat /etc/hosts /etc/resolv.conf /etc/hostname; cat /sys/class/net/lo/flags; cat /proc/net/dev"}})
	t.Logf("%+v", r)
}
