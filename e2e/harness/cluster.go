package harness

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"

	"github.com/istio-sidecar/istio-sidecar/internal/testenv"
)

// The cluster's network: one /24 that the host does not route, bridged inside a namespace of its own so that
// traffic between nodes never crosses the host's netfilter (a host with br_netfilter would pass bridged frames
// through its FORWARD chain).
var (
	lanPrefix = netip.MustParsePrefix("10.213.0.0/24")
	// lanHost is the host's address on it: the server, and whatever the test runs on the host for the nodes
	// (istiod), listen there.
	lanHost = netip.MustParseAddr("10.213.0.1")
)

// Cluster is one Nomad server on the host and clients each in a network namespace of its own with its own
// address, as nodes on one network: a service on one is reached from another at the node's address and the port
// Nomad mapped, never through the host's own address.
type Cluster struct {
	// Server runs only the server, listening on HostIP; its Client is the cluster's API.
	Server *Agent
	// Nodes are the clients, each with its own Name (the node name), address (NodeIP) and data directory.
	Nodes []*Agent
	// HostIP is the host's address on the nodes' network.
	HostIP netip.Addr
	// NodeIPs[i] is Nodes[i]'s address, which its node attribute unique.network.ip-address and its services carry.
	NodeIPs []netip.Addr
}

// ClusterNetwork is the nodes' network before the nodes: the host is on it already, so that what the test runs
// for the nodes (istiod) can listen at HostIP before any node starts.
type ClusterNetwork struct {
	HostIP netip.Addr
	lan    *lan
}

// NewClusterNetwork makes the nodes' network and joins the host to it at HostIP. It goes when the test ends.
func NewClusterNetwork(t T) *ClusterNetwork {
	t.Helper()
	RequireRoot(t)
	if used := ClusterNetworkOnHost(); len(used) > 0 {
		t.Fatalf("the host already has %s (a run killed before its cleanup leaves its link; delete it): %s", lanPrefix, strings.Join(used, "; "))
	}
	n := &ClusterNetwork{HostIP: lanHost, lan: newLAN(t)}
	n.lan.join(t, "", lanHost)
	return n
}

// StartCluster makes the network and starts the cluster on it (NewClusterNetwork, then Start).
func StartCluster(t T, n int, client Options) *Cluster {
	t.Helper()
	return NewClusterNetwork(t).Start(t, n, client)
}

// Start starts a server on the host and n clients configured by client (Role, NetnsPath, BindAddr, Interface
// and Servers are the cluster's to set). Each client checks for its own leftovers when the test ends, as a
// single agent does.
func (net *ClusterNetwork) Start(t T, n int, client Options) *Cluster {
	t.Helper()
	c := &Cluster{HostIP: net.HostIP}
	c.Server = Start(t, Options{Name: "server", Role: RoleServer, BindAddr: net.HostIP.String(), NomadBin: client.NomadBin,
		ACL: client.ACL, LogLevel: client.LogLevel})
	addr := net.HostIP
	for range n {
		addr = addr.Next()
		ns := testenv.NewNetns(t, "isnode")
		net.lan.join(t, ns.Name, addr)
		// Nomad's bridge networking routes a group's traffic out through the node, as a host's kernel would.
		if out, err := exec.Command("ip", "netns", "exec", ns.Name, "sysctl", "-qw", "net.ipv4.ip_forward=1").CombinedOutput(); err != nil {
			t.Fatalf("enabling forwarding in %s: %v: %s", ns.Name, err, out)
		}
		opts := client
		opts.Role, opts.NetnsPath, opts.BindAddr, opts.Interface = RoleClient, ns.Path, addr.String(), "eth0"
		opts.Servers = []string{fmt.Sprintf("%s:%d", net.HostIP, c.Server.ports.RPC)}
		opts.Token = c.Server.ManagementToken
		if opts.Name == "" {
			opts.Name = "node"
		}
		node := Start(t, opts)
		c.Nodes = append(c.Nodes, node)
		c.NodeIPs = append(c.NodeIPs, addr)
	}
	return c
}

// ClusterNetworkOnHost lists what the host has of the cluster's network: an address in it or a route to it
// other than the default one. Empty before a cluster starts and after it has gone.
func ClusterNetworkOnHost() []string {
	var used []string
	if out, err := exec.Command("ip", "-o", "addr", "show", "to", lanPrefix.String()).Output(); err == nil {
		used = append(used, nonEmptyLines(string(out))...)
	}
	if out, err := exec.Command("ip", "route", "show", "match", lanHost.String()).Output(); err == nil {
		for _, l := range nonEmptyLines(string(out)) {
			if !strings.HasPrefix(l, "default ") {
				used = append(used, "route "+l)
			}
		}
	}
	return used
}

func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// lan is the bridge the cluster's namespaces hang off, in a namespace of its own.
type lan struct {
	ns    testenv.Netns
	ports int
}

func newLAN(t T) *lan {
	t.Helper()
	l := &lan{ns: testenv.NewNetns(t, "islan")}
	l.ns.IP(t, "link", "add", "br0", "type", "bridge")
	l.ns.IP(t, "link", "set", "br0", "up")
	return l
}

// join connects a namespace (ns, or the host's for "") to the bridge with a veth pair whose far end, eth0 in ns or
// a link named after the bridge's namespace on the host, holds addr.
func (l *lan) join(t T, ns string, addr netip.Addr) {
	t.Helper()
	far, dest := "eth0", ns
	if ns == "" {
		// The host's namespace is pid 1's; its link is named so that an operator sees whose it is.
		far, dest = "l"+strings.TrimPrefix(l.ns.Name, "islan-"), "1"
		// Deleted now rather than with the bridge's namespace, which the kernel may tear down later.
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "link", "delete", far).CombinedOutput(); err != nil && !strings.Contains(string(out), "Cannot find") {
				t.Errorf("deleting the host's link %s: %v: %s", far, err, out)
			}
		})
	}
	l.ports++
	port := fmt.Sprintf("b%d", l.ports)
	l.ns.IP(t, "link", "add", port, "type", "veth", "peer", "name", far, "netns", dest)
	l.ns.IP(t, "link", "set", port, "master", "br0", "up")
	ip := []string{"ip"}
	if ns != "" {
		ip = append(ip, "-n", ns)
	}
	prefix := netip.PrefixFrom(addr, lanPrefix.Bits()).String()
	for _, args := range [][]string{{"addr", "add", prefix, "dev", far}, {"link", "set", far, "up"}} {
		if out, err := exec.Command(ip[0], append(ip[1:], args...)...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v: %s", strings.Join(ip, " "), strings.Join(args, " "), err, out)
		}
	}
}

// NodeNetns is the network namespace the agent runs in, "" for the host's: where a process on this node runs.
func (a *Agent) NodeNetns() string { return a.opts.NetnsPath }
