package driver

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/istio-sidecar/istio-sidecar/internal/testenv"
)

// saveIn is the namespace's nat and raw tables, as an operator would read them.
func saveIn(t *testing.T, netns string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", filepath.Base(netns), "iptables-save").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save: %v: %s", err, out)
	}
	return string(out)
}

// rulesAndChains keeps what an operator would call the rules: every rule and every user chain. An empty
// built-in table that nf_tables creates on first use (and iptables-restore cannot drop) holds neither.
func rulesAndChains(save string) string {
	var keep []string
	for _, line := range strings.Split(save, "\n") {
		if strings.HasPrefix(line, "-A ") || (strings.HasPrefix(line, ":") && strings.Contains(line, " - [")) {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

func ourRules(save, allocID string) int {
	n := 0
	for _, line := range strings.Split(save, "\n") {
		if strings.HasPrefix(line, "-A ") && strings.Contains(line, "istio-sidecar:alloc="+allocID) {
			n++
		}
	}
	return n
}

// proxyWritableFile is a file the proxy user (the stand-in runs as 1337) can append to.
func proxyWritableFile(t *testing.T, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 1337, 1337); err != nil {
		t.Fatal(err)
	}
	return path
}

// dialFrom connects from inside the namespace, as an app in the group would.
func dialFrom(t *testing.T, netns, addr string) error {
	t.Helper()
	h, err := ns.GetNS(netns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	return h.Do(func(ns.NetNS) error {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
}

func TestInterception_InPlaceBeforeReadyCapturesAndGoesOnStop(t *testing.T) {
	t.Parallel()
	b := integration(t)
	b.needStandin(t, "connection log")
	td := newTestDriver(t, b, nil)
	ev := td.events(t)
	netns := newNetns(t)
	cfg := td.newTask(t, netns, `
drain_duration = "1s"
exclude_outbound_ports = ["9999"]
`, nil)
	connLog := proxyWritableFile(t, cfg.TaskDir().LocalDir, "connections.jsonl")
	cfg.Env["STANDIN_ENVOY_CONNECTION_LOG"] = connLog
	td.start(t, cfg)
	save := saveIn(t, netns)
	if n := ourRules(save, cfg.AllocID); n == 0 || !strings.Contains(save, ":ISTIO_OUTPUT") {
		t.Fatalf("no tagged ISTIO_ rules after StartTask:\n%s", save)
	}
	waitFor(t, 5*time.Second, "the iptables event", func() bool { return ev.has("iptables: ") })

	// An app connecting anywhere outside the namespace lands on Envoy's 15001 with its original destination.
	if err := dialFrom(t, netns, "10.213.0.9:80"); err != nil {
		t.Fatalf("connection was not captured (nothing answers at 10.213.0.9): %v", err)
	}
	waitFor(t, 5*time.Second, "the connection in the proxy's log", func() bool {
		data, _ := os.ReadFile(connLog)
		return strings.Contains(string(data), `"original_dst":"10.213.0.9:80"`)
	})
	// An excluded port goes direct: nothing listens there, so the connection fails instead of reaching Envoy.
	if err := dialFrom(t, netns, "10.213.0.9:9999"); err == nil {
		t.Fatalf("a connection to an excluded port reached a listener")
	}

	if err := td.StopTask(cfg.ID, 10*time.Second, ""); err != nil {
		t.Fatal(err)
	}
	waitResult(t, td, cfg.ID)
	if save := saveIn(t, netns); ourRules(save, cfg.AllocID) != 0 || strings.Contains(save, "ISTIO_") {
		t.Fatalf("rules left after the stop:\n%s", save)
	}
	waitFor(t, 5*time.Second, "the rules-removed event", func() bool { return ev.contains("interception rules removed") })
}

func TestInterception_FailedStartLeavesNoRule(t *testing.T) {
	t.Parallel()
	b := integration(t)
	b.needStandin(t, "never-ready")
	td := newTestDriver(t, b, nil)
	netns := newNetns(t)
	before := rulesAndChains(saveIn(t, netns))
	cfg := td.newTask(t, netns, `readiness_timeout = "2s"`, map[string]string{"STANDIN_ENVOY_MODE": "never-ready"})
	if _, _, err := td.StartTask(cfg); err == nil {
		t.Fatal("StartTask succeeded")
	}
	if after := rulesAndChains(saveIn(t, netns)); after != before {
		t.Fatalf("a failed start changed the namespace's rules:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// When Envoy dies, the rules stay (app traffic fails closed rather than bypassing the mesh); a restart finds
// them in place; if no restart comes within the grace period, they go.
func TestInterception_SurvivesACrashThenGoesAfterTheGracePeriod(t *testing.T) {
	t.Parallel()
	b := integration(t)
	b.needStandin(t, "crash")
	td := newTestDriver(t, b, func(c *Config) { c.InterceptionGracePeriod = "3s" })
	ev := td.events(t)
	netns := newNetns(t)
	crashing := map[string]string{"STANDIN_ENVOY_MODE": "crash", "STANDIN_ENVOY_CRASH_AFTER": "500ms"}
	cfg := td.newTask(t, netns, "", crashing)
	td.start(t, cfg)
	rulesBefore := ourRules(saveIn(t, netns), cfg.AllocID)
	waitResult(t, td, cfg.ID)
	if n := ourRules(saveIn(t, netns), cfg.AllocID); n != rulesBefore {
		t.Fatalf("rules changed when Envoy crashed: %d before, %d after", rulesBefore, n)
	}
	if err := td.DestroyTask(cfg.ID, true); err != nil {
		t.Fatal(err)
	}

	// Nomad restarts the task: same allocation, new task ID; the rules are already in place.
	restart := *cfg
	restart.ID = cfg.ID + "-2"
	restart.Env = crashing
	if _, _, err := td.StartTask(&restart); err != nil {
		t.Fatalf("restart: %v", err)
	}
	t.Cleanup(func() { _ = td.DestroyTask(restart.ID, true) })
	waitFor(t, 5*time.Second, "the already-in-place event", func() bool {
		return ev.contains("rules already in place")
	})
	waitResult(t, td, restart.ID)
	// No third start: the grace period passes and the allocation is over.
	waitFor(t, 15*time.Second, "the rules to be removed after the grace period", func() bool {
		return ourRules(saveIn(t, netns), cfg.AllocID) == 0
	})
}

// A restart that fails (its Envoy never gets ready) leaves the allocation's rules as they were, since the app
// still relies on them, and the grace period then takes them away as after any exit.
func TestInterception_FailedRestartKeepsTheRulesForTheGracePeriod(t *testing.T) {
	t.Parallel()
	b := integration(t)
	b.needStandin(t, "crash")
	td := newTestDriver(t, b, func(c *Config) { c.InterceptionGracePeriod = "3s" })
	netns := newNetns(t)
	cfg := td.newTask(t, netns, `readiness_timeout = "1s"`,
		map[string]string{"STANDIN_ENVOY_MODE": "crash", "STANDIN_ENVOY_CRASH_AFTER": "500ms"})
	td.start(t, cfg)
	rulesBefore := ourRules(saveIn(t, netns), cfg.AllocID)
	waitResult(t, td, cfg.ID)
	if err := td.DestroyTask(cfg.ID, true); err != nil {
		t.Fatal(err)
	}

	restart := *cfg
	restart.ID = cfg.ID + "-2"
	restart.Env = map[string]string{"STANDIN_ENVOY_MODE": "never-ready"}
	if _, _, err := td.StartTask(&restart); err == nil {
		t.Fatal("a restart whose Envoy never gets ready succeeded")
	}
	if n := ourRules(saveIn(t, netns), cfg.AllocID); n != rulesBefore {
		t.Fatalf("the failed restart changed the rules: %d before, %d after", rulesBefore, n)
	}
	waitFor(t, 15*time.Second, "the rules to be removed after the grace period", func() bool {
		return ourRules(saveIn(t, netns), cfg.AllocID) == 0
	})
}

func TestInterception_DriftIsRestored(t *testing.T) {
	t.Parallel()
	b := integration(t)
	td := newTestDriver(t, b, func(c *Config) { c.DriftCheckInterval = "300ms" })
	ev := td.events(t)
	netns := newNetns(t)
	cfg := td.newTask(t, netns, `drain_duration = "1s"`, nil)
	td.start(t, cfg)
	t.Cleanup(func() { _ = td.StopTask(cfg.ID, 5*time.Second, "") })
	want := ourRules(saveIn(t, netns), cfg.AllocID)
	if out, err := exec.Command("ip", "netns", "exec", filepath.Base(netns), "iptables", "-t", "nat", "-F", "ISTIO_OUTPUT").CombinedOutput(); err != nil {
		t.Fatalf("flush: %v %s", err, out)
	}
	waitFor(t, 10*time.Second, "the rules to be restored", func() bool {
		return ourRules(saveIn(t, netns), cfg.AllocID) == want && ev.has("iptables: interception rules had drifted and were restored")
	})
}

// TPROXY in a group namespace: the proxy user keeps CAP_NET_RAW (the stand-in exits without it when it sets
// IP_TRANSPARENT), the policy routing goes in with the rules and out with the stop.
func TestInterception_TProxyInAGroupNamespace(t *testing.T) {
	t.Parallel()
	b := integration(t)
	b.needStandin(t, "the transparent listener's log")
	td := newTestDriver(t, b, nil)
	ev := td.events(t)
	netns := newNetns(t)
	cfg := td.newTask(t, netns, `
interception_mode = "TPROXY"
drain_duration    = "1s"
`, nil)
	td.start(t, cfg)
	waitFor(t, 5*time.Second, "the routing event", func() bool { return ev.contains("policy routing: fwmark 1337 → table 133 added") })
	if rules := ipIn(t, netns, "rule", "show"); !strings.Contains(rules, "fwmark 0x539 lookup 133") {
		t.Fatalf("no fwmark rule:\n%s", rules)
	}
	for _, pid := range procsIn(cfg.TaskDir().Dir) {
		for field, want := range map[string]string{"CapAmb:": "0000000000002000", "CapBnd:": "0000000000002000", "NoNewPrivs:": "1"} {
			if got := procField(pid, field); got != want {
				t.Errorf("%s (pid %d): %s %s, want %s (CAP_NET_RAW only, no privilege to gain)", procExe(pid), pid, field, got, want)
			}
		}
	}
	if err := td.StopTask(cfg.ID, 10*time.Second, ""); err != nil {
		t.Fatal(err)
	}
	waitResult(t, td, cfg.ID)
	if rules := ipIn(t, netns, "rule", "show"); strings.Contains(rules, "lookup 133") {
		t.Fatalf("routing left after the stop:\n%s", rules)
	}
	if save := saveIn(t, netns); strings.Contains(save, "ISTIO_") {
		t.Fatalf("rules left after the stop:\n%s", save)
	}
}

func ipIn(t *testing.T, netns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", filepath.Base(netns)}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
	return string(out)
}

// newPeeredNetns creates the group's namespace and a peer namespace joined by a veth pair, as another host
// of the mesh would reach the group: group 10.214.1.2, peer 10.214.1.3.
func newPeeredNetns(t *testing.T) (group, peer string) {
	t.Helper()
	g, p := testenv.NewNetns(t, "isc-grp"), testenv.NewNetns(t, "isc-peer")
	g.IP(t, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", p.Name)
	g.IP(t, "addr", "add", "10.214.1.2/24", "dev", "eth0")
	p.IP(t, "addr", "add", "10.214.1.3/24", "dev", "eth0")
	g.IP(t, "link", "set", "eth0", "up")
	p.IP(t, "link", "set", "eth0", "up")
	return g.Path, p.Path
}

// listenIn opens a TCP listener inside the namespace (the socket keeps it) and reports each client's address.
func listenIn(t *testing.T, netns, addr string) <-chan string {
	t.Helper()
	h, err := ns.GetNS(netns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var ln net.Listener
	if err := h.Do(func(ns.NetNS) error {
		var lerr error
		ln, lerr = net.Listen("tcp", addr)
		return lerr
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	clients := make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			clients <- c.RemoteAddr().String()
			c.Close()
		}
	}()
	return clients
}

// Inbound: a peer's connection to the app's port lands on Envoy's 15006 and reaches the app from 127.0.0.6,
// Envoy's inbound passthrough address, which Istio's rules let through without capturing it again.
func TestInterception_InboundReachesTheAppThroughTheProxy(t *testing.T) {
	t.Parallel()
	b := integration(t)
	b.needStandin(t, "connection log")
	td := newTestDriver(t, b, nil)
	group, peer := newPeeredNetns(t)
	cfg := td.newTask(t, group, `drain_duration = "1s"`, nil)
	connLog := proxyWritableFile(t, cfg.TaskDir().LocalDir, "connections.jsonl")
	cfg.Env["STANDIN_ENVOY_CONNECTION_LOG"] = connLog
	app := listenIn(t, group, "10.214.1.2:8080")
	td.start(t, cfg)
	t.Cleanup(func() { _ = td.StopTask(cfg.ID, 5*time.Second, "") })

	if err := dialFrom(t, peer, "10.214.1.2:8080"); err != nil {
		t.Fatalf("peer to app: %v", err)
	}
	select {
	case from := <-app:
		if !strings.HasPrefix(from, "127.0.0.6:") {
			t.Fatalf("the app saw the connection from %s, want Envoy's 127.0.0.6 (it bypassed the proxy)", from)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the app never saw the connection")
	}
	waitFor(t, 5*time.Second, "the inbound connection in the proxy's log", func() bool {
		data, _ := os.ReadFile(connLog)
		return strings.Contains(string(data), `"listener":"inbound"`) && strings.Contains(string(data), `"original_dst":"10.214.1.2:8080"`)
	})
}
