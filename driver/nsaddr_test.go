package driver

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/istio-sidecar/istio-sidecar/internal/testenv"
)

// In bridge mode Nomad gives a raw_exec or exec group no HostsConfig: INSTANCE_IP is read from the group's
// namespace, not taken from the node's address its ports carry, which every group on the node shares.
func TestInstanceIP_GroupNamespaceBeforeTheNodeAddress(t *testing.T) {
	ports := structs.AllocatedPorts{{Label: "http", Value: 25431, To: 8080, HostIP: "10.0.0.5"}}
	cfg := &drivers.TaskConfig{
		NetworkIsolation: &drivers.NetworkIsolationSpec{Mode: drivers.NetIsolationModeGroup, Path: "/var/run/netns/4f1c"},
		Resources:        &drivers.Resources{Ports: &ports},
	}
	read := namespaceAddress
	t.Cleanup(func() { namespaceAddress = read })
	for _, c := range []struct {
		name string
		addr netip.Addr
		err  error
		want string
	}{
		{"the namespace's address", netip.MustParseAddr("172.26.64.9"), nil, "172.26.64.9"},
		// Never the port's host address, the node's, which every group on the node shares.
		{"an unreadable namespace fails the start", netip.Addr{}, errors.New("gone"), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var asked string
			namespaceAddress = func(path string) (netip.Addr, error) { asked = path; return c.addr, c.err }
			got, err := instanceIP(cfg, &taskSettings{})
			if got != c.want || asked != "/var/run/netns/4f1c" || (err != nil) != (c.err != nil) {
				t.Errorf("INSTANCE_IP %q, %v (namespace %q read), want %q", got, err, asked, c.want)
			}
		})
	}
	// Host mode has no namespace of its own: the node's address is the workload's.
	host := &drivers.TaskConfig{Resources: &drivers.Resources{Ports: &ports}}
	namespaceAddress = func(string) (netip.Addr, error) { t.Fatal("host mode read a namespace"); return netip.Addr{}, nil }
	if got, err := instanceIP(host, &taskSettings{}); got != "10.0.0.5" || err != nil {
		t.Errorf("host mode INSTANCE_IP %q, %v, want the node's 10.0.0.5", got, err)
	}
}

// The real reading, in namespaces made for the test: IPv4 first, else IPv6, never loopback or link-local.
func TestNamespaceAddress_ReadsTheGroupsOwnAddress(t *testing.T) {
	testenv.RequireRoot(t, "creates network namespaces")
	testenv.RequireTools(t, "ip")
	for _, c := range []struct {
		name  string
		addrs []string
		want  string
	}{
		{"dual stack", []string{"fd00:26::9/64", "172.26.64.9/20"}, "172.26.64.9"},
		// The kernel lists an interface's IPv4 addresses first; an IPv6-only interface before an IPv4 one is
		// what tells the preference from taking the first address.
		{"IPv6 on the first interface, IPv4 on a later one", []string{"fd00:26::9/64"}, "10.26.0.9"},
		{"IPv6 only", []string{"fd00:26::9/64"}, "fd00:26::9"},
		{"none", nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			ns := testenv.NewNetns(t, "isaddr")
			if len(c.addrs) > 0 {
				ns.AddInterface(t, c.addrs...)
			}
			if c.want == "10.26.0.9" {
				ns.IP(t, "link", "add", "eth2", "type", "veth", "peer", "name", "eth3")
				ns.IP(t, "addr", "add", "10.26.0.9/24", "dev", "eth2")
				ns.IP(t, "link", "set", "eth2", "up")
			}
			got, err := namespaceAddress(ns.Path)
			if c.want == "" {
				if err == nil {
					t.Fatalf("an address %s in a namespace with none", got)
				}
				return
			}
			if err != nil || got.String() != c.want {
				t.Fatalf("namespaceAddress = %s, %v; want %s", got, err, c.want)
			}
		})
	}
}
