//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
	"github.com/istio-sidecar/istio-sidecar/internal/testenv"
)

const (
	// The example jobspecs, which the scenarios run as users would.
	bridgeExample = "bridge-mode.nomad.hcl"
	hostExample   = "host-mode.nomad.hcl"
	// The examples' meshed group, and its task names.
	exampleGroup = "app"
	proxyTask    = "istio-proxy"
	clientTask   = "client"
	serverTask   = "server"

	// bridgeGateway is the host's address on Nomad's bridge (bridge_network_subnet 172.26.64.0/20): outside
	// every group, inside nothing but this host, so a scenario's outbound call never leaves the machine.
	bridgeGateway = "172.26.64.1"
	// connLogName is the stand-in Envoy's connection log, in the allocation's shared directory.
	connLogName = "connections.jsonl"

	meshTimeout = 90 * time.Second
)

// testappBin builds testdoubles/testapp once per test binary, into a directory removed by TestMain.
var testapp struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if testapp.dir != "" {
		os.RemoveAll(testapp.dir)
	}
	os.Exit(code)
}

func testappBin(t testing.TB) string {
	t.Helper()
	testapp.once.Do(func() {
		if testapp.dir, testapp.err = os.MkdirTemp("", "istio-sidecar-testapp-"); testapp.err != nil {
			return
		}
		// Tasks run as root under raw_exec, but keep the binary reachable for any user all the same.
		_ = os.Chmod(testapp.dir, 0o755)
		testapp.path, testapp.err = harness.BuildTestapp(testapp.dir)
	})
	if testapp.err != nil {
		t.Fatal(testapp.err)
	}
	return testapp.path
}

// meshAgent starts an agent with the plugin, ready to run the examples.
func meshAgent(t *testing.T) *harness.Agent {
	t.Helper()
	harness.RequireBridgeNetworking(t)
	agent := harness.Start(t, pluginOptions(t))
	agent.WaitDriver(t, harness.PluginName, true)
	return agent
}

// putMeshSecrets writes the group Variable that the examples' templates read, as the controller would: a fresh
// root certificate and a placeholder bootstrap token (no istiod runs in these tests; pilot-agent retries the CA
// in the background).
func putMeshSecrets(t *testing.T, agent *harness.Agent, jobID string) {
	t.Helper()
	agent.PutVariable(t, "nomad/jobs/"+jobID+"/"+exampleGroup, map[string]string{
		"root_cert":   rootCertPEM(t),
		"istio_token": "e2e-placeholder-token",
	})
}

func rootCertPEM(t *testing.T) string {
	t.Helper()
	pem, err := testenv.RootCert("e2e mesh root")
	if err != nil {
		t.Fatal(err)
	}
	return string(pem)
}

// bridgeVars are the bridge example's variables for a scenario: this build's testapp, a target, a fast drain and
// restart, and the stand-in's connection log in the allocation's shared directory (which Nomad makes writable
// for every user, so the stand-in, running as the proxy user, can create it).
func bridgeVars(t *testing.T, target string) harness.Vars {
	return harness.Vars{
		"testapp_path":        testappBin(t),
		"call_target":         target,
		"call_every":          "500ms",
		"drain_duration":      "1s",
		"proxy_restart_delay": "1s",
		"proxy_env":           map[string]string{"STANDIN_ENVOY_CONNECTION_LOG": "$${NOMAD_ALLOC_DIR}/" + connLogName},
	}
}

// runBridgeJob registers the bridge example as job id and waits until its proxy and both app tasks run.
func runBridgeJob(t *testing.T, agent *harness.Agent, id string, vars harness.Vars) *api.Allocation {
	t.Helper()
	putMeshSecrets(t, agent, id)
	job := agent.ParseJobVars(t, harness.ExampleFile(t, bridgeExample), id, vars)
	agent.Register(t, job)
	alloc := agent.WaitAlloc(t, id, api.AllocClientStatusRunning)
	for _, task := range []string{proxyTask, serverTask, clientTask} {
		agent.WaitTaskState(t, alloc.ID, task, harness.TaskStateRunning)
	}
	return alloc
}

// connRecord is one line of the stand-in Envoy's connection log (testdoubles/standin-envoy/connlog.go).
type connRecord struct {
	Time        time.Time `json:"time"`
	Listener    string    `json:"listener"`
	Src         string    `json:"src"`
	OriginalDst string    `json:"original_dst"`
	Outcome     string    `json:"outcome"`
	Error       string    `json:"error"`
	SrcUID      int       `json:"src_uid"`
}

func connLogPath(agent *harness.Agent, allocID string) string {
	return filepath.Join(agent.AllocDir(allocID), "alloc", connLogName)
}

// readConnLog returns the outbound records whose original destination is dst ("" for all), oldest first. A
// missing log is no records: the stand-in creates it when it starts.
func readConnLog(t *testing.T, path, dst string) []connRecord {
	t.Helper()
	return readListenerLog(t, path, "outbound", dst)
}

// readListenerLog is readConnLog for the records of one listener, "outbound" or "inbound".
func readListenerLog(t *testing.T, path, listener, dst string) []connRecord {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("reading the connection log: %v", err)
	}
	defer f.Close()
	var recs []connRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r connRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			continue // a line being written
		}
		if r.Listener == listener && (dst == "" || r.OriginalDst == dst) {
			recs = append(recs, r)
		}
	}
	return recs
}

// waitConnLog waits until the log holds more than after outbound records to dst, and returns them all.
func waitConnLog(t *testing.T, path, dst string, after int) []connRecord {
	t.Helper()
	var recs []connRecord
	pollUntil(t, meshTimeout, fmt.Sprintf("more than %d captured connections to %s in %s", after, dst, path), func() (bool, string) {
		recs = readConnLog(t, path, dst)
		return len(recs) > after, fmt.Sprintf("%d records", len(recs))
	})
	return recs
}

// pollUntil polls cond every 100 ms until it holds, failing the test with the last state after timeout.
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	if err := harness.Poll(timeout, 100*time.Millisecond, what, cond); err != nil {
		t.Fatal(err)
	}
}

// upstream is a TCP listener on the host's bridge address standing for a service outside the group: it answers
// HTTP and counts the connections that reached it.
type upstream struct {
	Addr     string
	accepted atomic.Int64
}

// listenOnBridge listens on the bridge gateway on a free port. IP_FREEBIND lets it bind before the first
// bridge-mode allocation has created Nomad's bridge.
func listenOnBridge(t *testing.T) *upstream {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_FREEBIND, 1)
		})
		return errors.Join(err, serr)
	}}
	ln, err := lc.Listen(t.Context(), "tcp4", bridgeGateway+":0")
	if err != nil {
		t.Fatalf("listening on the bridge gateway: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	u := &upstream{Addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.accepted.Add(1)
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 4096)
				_, _ = c.Read(buf)
				_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"))
			}()
		}
	}()
	return u
}

// clientLines returns the client task's call outcome lines so far.
func clientLines(t *testing.T, agent *harness.Agent, allocID string) []string {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(agent.TaskLogs(t, allocID, clientTask, "stdout"), "\n") {
		if strings.HasPrefix(l, "call ") {
			lines = append(lines, l)
		}
	}
	return lines
}

// proxyPIDs returns the pilot-agent pid of the latest start of the allocation's sidecar and its Envoy's.
func proxyPIDs(t *testing.T, agent *harness.Agent, allocID string) (pilot, envoy int) {
	t.Helper()
	pids := harness.PilotAgentPIDs(agent.TaskEventsRaw(t, allocID, proxyTask))
	if len(pids) == 0 {
		t.Fatalf("no \"Proxy started\" event; events:\n%s", strings.Join(agent.TaskEvents(t, allocID, proxyTask), "\n"))
	}
	pilot = pids[len(pids)-1]
	pollUntil(t, 30*time.Second, fmt.Sprintf("Envoy under pilot-agent pid %d", pilot), func() (bool, string) {
		children := harness.ChildPIDs(pilot)
		if len(children) == 1 {
			envoy = children[0]
			return true, ""
		}
		return false, fmt.Sprintf("children %v", children)
	})
	return pilot, envoy
}
