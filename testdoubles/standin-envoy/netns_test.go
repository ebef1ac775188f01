package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/istio-sidecar/istio-sidecar/internal/testenv"
)

// Helpers for tests that need root: a throwaway network namespace, sockets opened inside it from this
// process, and polling instead of sleeping.

func requireRoot(t *testing.T, tools ...string) {
	t.Helper()
	testenv.RequireRoot(t, "creates network namespaces and iptables rules inside them")
	testenv.RequireTools(t, tools...)
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// newNetns creates a namespace with lo up and one interface, eth0, holding addrs (a non-loopback address for
// pilot-agent to find), and deletes it in Cleanup.
func newNetns(t *testing.T, addrs ...string) string {
	t.Helper()
	ns := testenv.NewNetns(t, "standin")
	ns.AddInterface(t, addrs...)
	return ns.Name
}

// inNetns runs fn on an OS thread switched into the namespace. Sockets keep the namespace they were
// created in, so a listener or connection made by fn works from any goroutine afterwards. fn must create
// its sockets synchronously (IP literals, no resolver goroutines).
func inNetns(ns string, fn func() error) error {
	target, err := os.Open(filepath.Join("/var/run/netns", ns))
	if err != nil {
		return fmt.Errorf("opening namespace: %w", err)
	}
	defer target.Close()
	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", syscall.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("opening own namespace: %w", err)
	}
	defer orig.Close()
	if err := setns(target); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	fnErr := fn()
	if err := setns(orig); err != nil {
		// Leave the thread locked: it is in the wrong namespace and the runtime ends it with the goroutine.
		return fmt.Errorf("returning to own namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// setns comes from x/sys (already in go.sum): the frozen syscall package has no SYS_SETNS on amd64. Only the
// tests use it; the stand-in itself stays on the standard library.
func setns(f *os.File) error {
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns %s: %w", f.Name(), err)
	}
	return nil
}

func dialIn(ns, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(ns, func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
		return err
	})
	return c, err
}

func dialContextIn(ns string) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNetns(ns, func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// waitFor polls cond until it returns nil or the deadline passes, then fails with cond's last error.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %v for %s: %v", timeout, what, err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval, not synchronisation
	}
}

// pidsOf lists live processes running the executable at path; zombies have no exe link and do not count.
func pidsOf(path string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && exe == path {
			pids = append(pids, pid)
		}
	}
	return pids
}

// buildStandin compiles this package into a temporary directory.
func buildStandin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "standin-envoy")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		for _, pid := range pidsOf(bin) {
			t.Errorf("stand-in pid %d left running; killing it", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return bin
}
