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
		{"an unreadable namespace leaves the port's host address", netip.Addr{}, errors.New("gone"), "10.0.0.5"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var asked string
			namespaceAddress = func(path string) (netip.Addr, error) { asked = path; return c.addr, c.err }
			if got := instanceIP(cfg, &taskSettings{}); got != c.want || asked != "/var/run/netns/4f1c" {
				t.Errorf("INSTANCE_IP %q (namespace %q read), want %q", got, asked, c.want)
			}
		})
	}
	// Host mode has no namespace of its own: the node's address is the workload's.
	host := &drivers.TaskConfig{Resources: &drivers.Resources{Ports: &ports}}
	namespaceAddress = func(string) (netip.Addr, error) { t.Fatal("host mode read a namespace"); return netip.Addr{}, nil }
	if got := instanceIP(host, &taskSettings{}); got != "10.0.0.5" {
		t.Errorf("host mode INSTANCE_IP %q, want the node's 10.0.0.5", got)
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
		{"IPv6 only", []string{"fd00:26::9/64"}, "fd00:26::9"},
		{"none", nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			ns := testenv.NewNetns(t, "isaddr")
			if len(c.addrs) > 0 {
				ns.AddInterface(t, c.addrs...)
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
