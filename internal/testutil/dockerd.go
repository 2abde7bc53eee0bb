package testutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// DockerdPath and DockerPath are the daemon and client of the Debian
// package docker.io.
const (
	DockerdPath = "/usr/sbin/dockerd"
	DockerPath  = "/usr/bin/docker"
)

// StartDockerd runs a private docker daemon — its own data-root,
// exec-root, pidfile and socket in a temp dir; no iptables, no bridge —
// waits until its API answers, and returns its DOCKER_HOST
// (unix:///…/docker.sock). When the test ends the daemon is stopped and
// its directories removed. Skips (or fails under
// STRATA_REQUIRE_PRIVILEGED=1) if dockerd is missing, the test is not
// root, or the daemon does not come up; the skip message carries the tail
// of its log.
func StartDockerd(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	Require(t, "dockerd", func() error { _, err := os.Stat(DockerdPath); return err },
		"apt-get install -y docker.io")
	// A short path: a unix socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "strata-dockerd-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	logPath := filepath.Join(dir, "dockerd.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(DockerdPath,
		"--iptables=false", "--ip6tables=false", "--bridge=none",
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"),
		"--host", "unix://"+sock,
	)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, so a test binary killed by a signal does not
	// take the terminal's signals to it and it is stopped only here.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dockerd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		// SIGTERM lets dockerd stop its managed containerd and unmount
		// its data-root; SIGKILL after 20 s.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			t.Logf("dockerd stopped: %v", err)
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Logf("dockerd killed after 20 s: %v", <-exited)
		}
		// dockerd leaves mounts behind: the bind mount of the host's
		// network namespace a --network host container needs (exec/netns/default).
		if err := unmountUnder(dir); err != nil {
			t.Errorf("unmounting what dockerd left: %v", err)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing dockerd dirs: %v", err)
		}
	}
	Require(t, "dockerd", func() error {
		err := waitDocker(sock, exited)
		if err != nil {
			stop()
			tail, _ := os.ReadFile(logPath)
			if len(tail) > 2000 {
				tail = tail[len(tail)-2000:]
			}
			return fmt.Errorf("%w; log tail:\n%s", err, tail)
		}
		return nil
	}, "dockerd needs root, cgroups mounted under /sys/fs/cgroup and overlayfs or vfs for its data-root")
	t.Cleanup(stop)
	return "unix://" + sock
}

// waitDocker polls /_ping on sock until dockerd answers OK.
func waitDocker(sock string, exited <-chan error) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get("http://docker/_ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("dockerd exited: %w", werr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dockerd not ready after 30s: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
