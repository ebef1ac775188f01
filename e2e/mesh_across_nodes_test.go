//go:build e2e

package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

const (
	meshBJob, meshBService = "mesh-b", "mesh-b"
	meshBHost              = "mesh-b.default.svc.cluster.local"
	meshCHost              = "mesh-c.default.svc.cluster.local"
	// B's cluster in A's proxy: the ServiceEntry's port is the one B's app listens on (the mapping's `to`).
	meshBCluster       = "outbound|8080||" + meshBHost
	meshBSubsetCluster = "outbound|8080|v1|" + meshBHost
	// allowAPolicy is how istiod names the AuthorizationPolicy below in an RBAC filter's policies.
	allowAPolicy = "ns[default]-policy[allow-a]-rule[0]"
)

// meshPolicy is what an operator applies with kubectl: A may call B, B takes mTLS only, and B's version v1 is
// a subset clients route to.
const meshPolicy = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-a, namespace: default}
spec:
  selector: {matchLabels: {app: mesh-b}}
  action: ALLOW
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/default/sa/mesh-a"]}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: mesh-b-strict, namespace: default}
spec:
  selector: {matchLabels: {app: mesh-b}}
  mtls: {mode: STRICT}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mesh-b, namespace: default}
spec:
  host: ` + meshBHost + `
  subsets:
  - name: v1
    labels: {version: v1}
`

// meshScenario is TestMeshAcrossNodes' state: A's allocation and B's first one, and where Nomad says B is.
type meshScenario struct {
	env   *meshEnv
	a, b  *api.Allocation
	bAddr netip.AddrPort
}

// TestMeshAcrossNodes: with a real Nomad agent, istiod and pilot-agent and the xDS stand-in Envoy, meshed
// services A and B (bridge mode) and a plain Nomad service C. A's proxy is given B's allocation at its node
// address and mapped port, a connection to it reaches B's app through B's inbound capture, C is an endpoint
// only while registered, A resolves B's name through the DNS proxy and its call is captured with istiod's
// address, policy applied with kubectl reaches both proxies, B's check goes through the agent and follows the
// app, and B's endpoints follow its health, scale and stop. The steps run in order on one mesh.
func TestMeshAcrossNodes(t *testing.T) {
	s := &meshScenario{env: meshCluster(t)}
	s.start(t)
	t.Run("1_BEndpointIsItsNodeAndHostPort", s.testBEndpoint)
	t.Run("2_ConnectionReachesBThroughInboundCapture", s.testConnectionToB)
	t.Run("3_PlainServiceOnlyWhileRegistered", s.testPlainService)
	t.Run("4_NameResolvedByDNSProxyAndCaptured", s.testDNS)
	t.Run("5_PolicyInBothProxies", s.testPolicy)
	t.Run("6_CheckThroughAgentFollowsApp", s.testCheck)
	t.Run("7_EndpointsFollowScaleAndStop", s.testScaleAndStop)
}

// start runs C, B and A, each pinned to its node, and waits for their allocations.
func (s *meshScenario) start(t *testing.T) {
	env, app := s.env, testappBin(t)
	env.B.Register(t, env.B.ParseJobVars(t, "mesh-c.hcl", "", harness.Vars{"testapp_path": app, "node": env.B.Name}))
	env.B.Register(t, env.B.ParseJobVars(t, "mesh-b.hcl", "", harness.Vars{"testapp_path": app, "node": env.B.Name}))
	env.A.Register(t, env.A.ParseJobVars(t, "mesh-a.hcl", "", harness.Vars{"testapp_path": app, "node": env.A.Name,
		"call_target": meshBHost + ":8080"}))
	s.b = runningAllocs(t, env.B, meshBJob, 1)[0]
	s.a = runningAllocs(t, env.A, "mesh-a", 1)[0]
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("A's istio-proxy:\n%s\nB's istio-proxy:\n%s", env.A.TaskLogs(t, s.a.ID, proxyTask, "stderr"),
				env.B.TaskLogs(t, s.b.ID, proxyTask, "stderr"))
		}
	})
	s.bAddr = registeredEndpoint(t, env.B, meshBService, s.b, "http")
	t.Logf("A is allocation %s on %s, B %s on %s registered at %s", s.a.ID, s.a.NodeName, s.b.ID, s.b.NodeName, s.bAddr)
}

// testBEndpoint: once B's sidecar is ready and its check passes, A's proxy has B's registration, the node's
// address and the host port Nomad mapped, as the one endpoint of B's cluster; not the namespace's address.
func (s *meshScenario) testBEndpoint(t *testing.T) {
	if netip.MustParsePrefix("172.26.64.0/20").Contains(s.bAddr.Addr()) {
		t.Fatalf("B is registered at %s, inside Nomad's bridge: another node could not reach it", s.bAddr)
	}
	waitEndpoints(t, s.a.ID, meshBCluster, []netip.AddrPort{s.bAddr})
	t.Logf("A's proxy: %s has endpoint %s", meshBCluster, s.bAddr)
}

// testConnectionToB: a connection from A's namespace to the endpoint A was given is captured by A's proxy,
// enters B's namespace through Nomad's port mapping, is captured by B's inbound listener and reaches B's app
// from the proxy's inbound passthrough address.
func (s *meshScenario) testConnectionToB(t *testing.T) {
	// A path of its own tells this request, in B's app's log, from A's app's calls to B by name.
	path := fmt.Sprintf("/from-a-namespace-%d", time.Now().UnixNano())
	out, err := harness.InNetns(harness.NetnsPath(s.a.ID), "curl", "-sS", "--max-time", "10", "http://"+s.bAddr.String()+path)
	if err != nil || !strings.Contains(out, "hello from testapp") {
		t.Fatalf("calling B at %s from A's namespace: %q, %v", s.bAddr, out, err)
	}
	t.Logf("B's app answered: %s", strings.TrimSpace(out))
	if recs := readConnLog(t, connLogPath(s.env.A, s.a.ID), s.bAddr.String()); len(recs) == 0 {
		t.Errorf("A's proxy logged no captured connection to %s", s.bAddr)
	}
	// After Nomad's port mapping the connection's destination is B's namespace address and the app's port.
	if s.b.NetworkStatus == nil || s.b.NetworkStatus.Address == "" {
		t.Fatalf("Nomad reports no namespace address for B's allocation %s", s.b.ID)
	}
	app := netip.AddrPortFrom(netip.MustParseAddr(s.b.NetworkStatus.Address), 8080).String()
	in := readListenerLog(t, connLogPath(s.env.B, s.b.ID), "inbound", app)
	var forwarded []string
	for _, r := range in {
		if r.Outcome == "forwarded" {
			forwarded = append(forwarded, r.Src+" -> "+r.OriginalDst)
		}
	}
	if len(forwarded) == 0 {
		t.Fatalf("B's inbound listener logged no connection forwarded to the app at %s: %+v", app, in)
	}
	t.Logf("B's inbound capture: %v", forwarded)
	pollUntil(t, meshTimeout, "B's app logging GET "+path+" from the proxy's inbound passthrough address 127.0.0.6", func() (bool, string) {
		logs := s.env.B.TaskLogs(t, s.b.ID, serverTask, "stdout")
		return strings.Contains(logs, "GET "+path+" from 127.0.0.6:"), logs
	})
}

// testPlainService: C's registration is the endpoint of C's host in A's proxy, and only while C is registered.
func (s *meshScenario) testPlainService(t *testing.T) {
	env := s.env
	c := runningAllocs(t, env.B, "mesh-c", 1)[0]
	cAddr := registeredEndpoint(t, env.B, "mesh-c", c, "http")
	// A plain service's ServiceEntry port is its registered port: it has no mapping.
	cluster := fmt.Sprintf("outbound|%d||%s", cAddr.Port(), meshCHost)
	waitEndpoints(t, s.a.ID, cluster, []netip.AddrPort{cAddr})
	t.Logf("A's proxy: %s has endpoint %s", cluster, cAddr)
	// C is at B's node address too. B's proxy is B's namespace address (INSTANCE_IP), so istiod does not take
	// C's endpoint for one of B's own: the push that gave A C's endpoint gave B no inbound chain for C's port.
	chains, err := waitDump(t, s.b.ID, "B's inbound listener", hasListener("virtualInbound")).FilterChains("virtualInbound")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chains {
		if c.DestinationPort == uint32(cAddr.Port()) {
			t.Errorf("B's proxy serves C's port %d as its own (chain %q): its INSTANCE_IP is the node's address", cAddr.Port(), c.Name)
		}
	}
	env.B.StopJob(t, "mesh-c")
	waitEndpoints(t, s.a.ID, cluster, nil)
	t.Logf("C stopped: %s has no endpoint", cluster)
}

// testDNS: A's app resolves B's name through pilot-agent's DNS proxy to the address istiod allocated to B's
// ServiceEntry, and its call by name is captured to 15001 with that address as original destination.
func (s *meshScenario) testDNS(t *testing.T) {
	vip := allocatedAddress(t, s.env, meshBService)
	pollUntil(t, meshTimeout, meshBHost+" resolved in A's namespace to "+vip.String(), func() (bool, string) {
		out, err := harness.InNetns(harness.NetnsPath(s.a.ID), "getent", "ahostsv4", meshBHost)
		return err == nil && strings.HasPrefix(out, vip.String()+" "), fmt.Sprintf("%q %v", out, err)
	})
	dst := netip.AddrPortFrom(vip, 8080).String()
	recs := waitConnLog(t, connLogPath(s.env.A, s.a.ID), dst, 0)
	t.Logf("A's app's call to %s:8080 captured by A's outbound listener with original destination %s (%d connections, first from %s)",
		meshBHost, dst, len(recs), recs[0].Src)
}

// testPolicy: policy applied with kubectl, as the operator's admin kubeconfig, reaches the proxies: B's inbound
// listener enforces the AuthorizationPolicy and takes mTLS only, and A has the DestinationRule's subset.
func (s *meshScenario) testPolicy(t *testing.T) {
	before, err := waitDump(t, s.b.ID, "B's inbound listener", hasListener("virtualInbound")).FilterChains("virtualInbound")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("B's virtualInbound before the policy:%s", chainsSay(before))
	if strictWithPolicy(before, allowAPolicy) {
		t.Fatalf("B's inbound listener already enforces %s and mTLS only before the policy is applied", allowAPolicy)
	}
	s.env.CP.Apply(t, meshPolicy)
	var after []harness.FilterChain
	waitDump(t, s.b.ID, "B's inbound listener with RBAC "+allowAPolicy+" and mTLS required", func(d *harness.ConfigDump) (bool, string) {
		after, err = d.FilterChains("virtualInbound")
		if err != nil {
			return false, err.Error()
		}
		return strictWithPolicy(after, allowAPolicy), chainsSay(after)
	})
	t.Logf("B's virtualInbound after the policy:%s", chainsSay(after))
	waitDump(t, s.a.ID, "A's cluster "+meshBSubsetCluster, func(d *harness.ConfigDump) (bool, string) {
		return d.HasCluster(meshBSubsetCluster), fmt.Sprint(d.ClusterNames())
	})
	t.Logf("A's proxy has cluster %s", meshBSubsetCluster)
}

func hasListener(name string) func(*harness.ConfigDump) (bool, string) {
	return func(d *harness.ConfigDump) (bool, string) {
		_, ok := d.Listener(name)
		return ok, "no listener " + name
	}
}

// strictWithPolicy: some chain enforces the policy, and every chain that terminates a connection for the app
// requires a client certificate (no plaintext chain is left but the blackhole).
func strictWithPolicy(chains []harness.FilterChain, policy string) bool {
	enforced, mtls := false, false
	for _, c := range chains {
		if strings.Contains(strings.Join(c.RBACPolicies, " "), policy) {
			enforced = true
		}
		if c.RequireClientCert {
			mtls = true
		} else if c.TransportProtocol == "raw_buffer" {
			return false
		}
	}
	return enforced && mtls
}

// testCheck: B's Nomad check, which goes to pilot-agent's status port (never captured) and from there to the
// app, passes with inbound capture on and STRICT mTLS, fails while the app reports unhealthy, which takes B
// out of A's endpoints, and passes again after, which brings it back.
func (s *meshScenario) testCheck(t *testing.T) {
	env := s.env
	waitCheck(t, env.B, s.b.ID, "success")
	for _, r := range readListenerLog(t, connLogPath(env.B, s.b.ID), "inbound", "") {
		if strings.HasSuffix(r.OriginalDst, ":15020") {
			t.Errorf("a connection to the status port went through B's inbound capture: %+v", r)
		}
	}
	unhealthy := filepath.Join(env.B.AllocDir(s.b.ID), "alloc", "unhealthy")
	if err := os.WriteFile(unhealthy, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitCheck(t, env.B, s.b.ID, "failure")
	waitEndpoints(t, s.a.ID, meshBCluster, nil)
	t.Logf("B's app unhealthy: its check fails and A's proxy has no endpoint of B")
	if err := os.Remove(unhealthy); err != nil {
		t.Fatal(err)
	}
	waitCheck(t, env.B, s.b.ID, "success")
	waitEndpoints(t, s.a.ID, meshBCluster, []netip.AddrPort{s.bAddr})
	t.Logf("B's app healthy again: its check passes and A's proxy has %s again", s.bAddr)
}

// testScaleAndStop: B scaled to two gives A two endpoints, back to one leaves the survivor's, and B stopped
// leaves none.
func (s *meshScenario) testScaleAndStop(t *testing.T) {
	env := s.env
	scale := func(n int) {
		waitDeployment(t, env.B, meshBJob)
		if _, _, err := env.B.Client.Jobs().Scale(meshBJob, exampleGroup, &n, "TestMeshAcrossNodes", false, nil, nil); err != nil {
			t.Fatalf("scaling %s to %d: %v", meshBJob, n, err)
		}
	}
	endpoints := func(n int) []netip.AddrPort {
		var out []netip.AddrPort
		for _, al := range runningAllocs(t, env.B, meshBJob, n) {
			out = append(out, registeredEndpoint(t, env.B, meshBService, al, "http"))
		}
		return out
	}
	scale(2)
	two := endpoints(2)
	waitEndpoints(t, s.a.ID, meshBCluster, two)
	t.Logf("B scaled to 2: A's proxy has %v", two)
	scale(1)
	one := endpoints(1)
	waitEndpoints(t, s.a.ID, meshBCluster, one)
	t.Logf("B scaled back to 1: A's proxy has %v", one)
	env.B.StopJob(t, meshBJob)
	waitEndpoints(t, s.a.ID, meshBCluster, nil)
	t.Logf("B stopped: A's proxy has no endpoint of B")
}
