package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"path/filepath"
	"strings"
)

// netnsDir is where `ip netns` mounts named namespaces.
const netnsDir = "/var/run/netns"

// Netns is a named network namespace that exists for one test.
type Netns struct {
	// Name is the namespace's name for `ip netns exec` and `ip -n`.
	Name string
	// Path is its mount, for nsenter --net and the driver's NetworkIsolationSpec.
	Path string
}

// NewNetns creates the namespace <prefix>-<8 hex digits> with loopback up, and deletes it when the test ends,
// failing the test if that does not work (a namespace left behind is a leak). It needs root and iproute2's ip.
func NewNetns(t TB, prefix string) Netns {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("choosing a namespace name: %v", err)
	}
	ns := Netns{Name: prefix + "-" + hex.EncodeToString(b)}
	ns.Path = filepath.Join(netnsDir, ns.Name)
	ip(t, "netns", "add", ns.Name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", ns.Name).CombinedOutput(); err != nil {
			t.Errorf("deleting network namespace %s: %v: %s", ns.Name, err, out)
		}
	})
	ns.IP(t, "link", "set", "lo", "up")
	return ns
}

// AddInterface gives the namespace an interface eth0 holding addrs (CIDR notation), up, as Nomad's bridge
// network gives a group. It is one end of a veth pair whose other end, eth1, stays in the namespace too: the host
// gains no link, and no dummy module is needed (some hosts lack it).
func (ns Netns) AddInterface(t TB, addrs ...string) {
	t.Helper()
	ns.IP(t, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
	for _, a := range addrs {
		ns.IP(t, "addr", "add", a, "dev", "eth0")
	}
	ns.IP(t, "link", "set", "eth0", "up")
	ns.IP(t, "link", "set", "eth1", "up")
}

// IP runs `ip -n <name> args...`, failing the test on error, and returns its output.
func (ns Netns) IP(t TB, args ...string) string {
	t.Helper()
	return ip(t, append([]string{"-n", ns.Name}, args...)...)
}

func ip(t TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// LinkToHost connects the namespace to the host with a veth pair: eth0 in the namespace holding nsAddr, and on
// the host a link named v<8 hex digits> holding hostAddr (both CIDR, one subnet), so that a process in the
// namespace reaches a server the test runs on the host's hostAddr. The host link goes when the test ends. It
// changes no rule on the host; the subnet must be one the host does not use.
func (ns Netns) LinkToHost(t TB, hostAddr, nsAddr string) {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("choosing a link name: %v", err)
	}
	host := "v" + hex.EncodeToString(b)
	ip(t, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns.Name)
	t.Cleanup(func() {
		// Deleting either end deletes the pair; the namespace's removal would too, but it runs later.
		if out, err := exec.Command("ip", "link", "delete", host).CombinedOutput(); err != nil && !strings.Contains(string(out), "Cannot find") {
			t.Errorf("deleting host link %s: %v: %s", host, err, out)
		}
	})
	ip(t, "addr", "add", hostAddr, "dev", host)
	ip(t, "link", "set", host, "up")
	ns.IP(t, "addr", "add", nsAddr, "dev", "eth0")
	ns.IP(t, "link", "set", "eth0", "up")
}

// LinkTo joins the namespace and peer with a veth pair, p<8 hex digits> here holding addr and eth0 in peer
// holding peerAddr (CIDR, one subnet): another host on the group's network, as a Nomad node or a checker sees it.
// The host namespace gains nothing.
func (ns Netns) LinkTo(t TB, peer Netns, addr, peerAddr string) {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("choosing a link name: %v", err)
	}
	link := "p" + hex.EncodeToString(b)
	ns.IP(t, "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", peer.Name)
	ns.IP(t, "addr", "add", addr, "dev", link)
	ns.IP(t, "link", "set", link, "up")
	peer.IP(t, "addr", "add", peerAddr, "dev", "eth0")
	peer.IP(t, "link", "set", "eth0", "up")
}
