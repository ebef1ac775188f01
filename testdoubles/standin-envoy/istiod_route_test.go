package main

import (
	"bufio"
	"fmt"
	"io"
	"testing"
	"time"
)

// The routed service: a ServiceEntry with its own VIP, a TCP and an HTTP port, and one WorkloadEntry on a backend
// the test runs in the sidecar's namespace. One iptables rule sends connections to the VIP to 15001; nothing
// listens on the VIP, so only routing to the endpoint answers.
const (
	routedVIP      = "240.240.0.5"
	routedEndpoint = "10.212.7.3"
	routedPort     = 29090
)

const routedServiceEntry = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: routed, namespace: %[1]s}
spec:
  hosts: [routed.%[1]s.svc.cluster.local]
  addresses: [%[2]s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9090, name: tcp, protocol: TCP}, {number: 8081, name: web, protocol: HTTP}]
  workloadSelector: {labels: {app: routed}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: routed-0, namespace: %[1]s}
spec: {address: %[3]s, ports: {tcp: %[4]d, web: %[4]d}, labels: {app: routed}, serviceAccount: routed}
`

// testRoutedToEndpoint: a captured connection to the ServiceEntry's VIP reaches its WorkloadEntry, through the
// VIP's own listener (TCP port) and through 0.0.0.0_8081's route configuration (HTTP port), and the connection
// log names the cluster and the endpoint.
func (s *istiodSidecar) testRoutedToEndpoint(t *testing.T) {
	mustRun(t, "ip", "-n", s.netns, "addr", "add", routedEndpoint+"/32", "dev", "lo")
	// A pod reaches the VIPs by its default route; without a route connect fails before the nat table sees it.
	mustRun(t, "ip", "-n", s.netns, "route", "add", routedVIP+"/32", "via", cpHostAddr)
	mustRun(t, "ip", "netns", "exec", s.netns, "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", routedVIP,
		"-j", "REDIRECT", "--to-ports", "15001")
	backendConns := startBackend(t, s.netns, fmt.Sprintf("%s:%d", routedEndpoint, routedPort))
	s.cp.Apply(t, fmt.Sprintf(routedServiceEntry, s.ns, routedVIP, routedEndpoint, routedPort))
	host := "routed." + s.ns + ".svc.cluster.local"
	waitFor(t, 60*time.Second, "the routed service's listeners, route and endpoints", func() error {
		dump, err := fetchConfigDump(s.client, "127.0.0.1:15000")
		if err != nil {
			return err
		}
		if l := dynamicListenerNames(dump); !l[routedVIP+"_9090"] || !l["0.0.0.0_8081"] {
			return fmt.Errorf("listeners %v", l)
		}
		if !hasRoute(dump, "8081", routedVIP) {
			return fmt.Errorf("route 8081 lacks %s", routedVIP)
		}
		for _, port := range []int{9090, 8081} {
			if err := hasEndpoint(dump, fmt.Sprintf("outbound|%d||%s", port, host), routedEndpoint, routedPort); err != nil {
				return err
			}
		}
		return nil
	})
	for _, port := range []int{9090, 8081} {
		src := pingPong(t, s.netns, fmt.Sprintf("%s:%d", routedVIP, port))
		rec := waitForConnection(t, s.connLog, func(r connRecord) bool { return r.Src == src })
		wantCluster := fmt.Sprintf("outbound|%d||%s", port, host)
		wantUpstream := fmt.Sprintf("%s:%d", routedEndpoint, routedPort)
		if rec.Cluster != wantCluster || rec.Upstream != wantUpstream || rec.Outcome != "forwarded" {
			t.Errorf("connection log = %+v, want cluster %s, upstream %s, forwarded", rec, wantCluster, wantUpstream)
		}
	}
	if n := len(backendConns); n != 2 {
		t.Errorf("endpoint saw %d connections, want 2", n)
	}
}

// pingPong sends a line to addr from inside ns, wants "pong" back, and returns the client's address.
func pingPong(t *testing.T, ns, addr string) string {
	t.Helper()
	c, err := dialIn(ns, addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		t.Fatal(err)
	}
	if reply, err := bufio.NewReader(c).ReadString('\n'); err != nil || reply != "pong\n" {
		t.Fatalf("%s replied %q, %v", addr, reply, err)
	}
	return c.LocalAddr().String()
}
