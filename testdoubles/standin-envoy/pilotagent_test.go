package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/istio-sidecar/istio-sidecar/internal/testenv"
)

const envPilotAgent = "ISTIO_SIDECAR_PILOT_AGENT"

// The namespace's layout: the instance address pilot-agent finds, and a second local address whose
// port 8080 the single iptables rule redirects to 15001. The backend listens on the real 10.211.0.50:8080,
// so forwarding to the original destination reaches it.
const (
	instanceIP  = "10.211.0.2"
	backendAddr = "10.211.0.50:8080"
	// proxyGID is the group pilot-agent (and so the stand-in) runs with. The rule exempts it, as Istio's
	// own rules exempt 1337, so the stand-in's connection to the original destination is not captured again.
	proxyGID = 1337
)

// TestPilotAgentWithStandin runs Istio's real pilot-agent with the stand-in as its Envoy.
func TestPilotAgentWithStandin(t *testing.T) {
	agent := os.Getenv(envPilotAgent)
	if agent == "" {
		testenv.SkipOrFail(t, "set %s to a pilot-agent binary (build/pilot-agent.sh builds one)", envPilotAgent)
	}
	requireRoot(t, "ip", "iptables", "go")
	standin := buildStandin(t)
	ns := newNetns(t, instanceIP+"/24", "10.211.0.50/32")
	mustRun(t, "ip", "netns", "exec", ns, "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "10.211.0.50",
		"--dport", "8080", "-m", "owner", "!", "--gid-owner", fmt.Sprint(proxyGID), "-j", "REDIRECT", "--to-ports", "15001")
	backendConns := startBackend(t, ns, backendAddr)

	work := t.TempDir()
	ca, err := testenv.RootCert("standin-envoy test CA")
	if err != nil {
		t.Fatal(err)
	}
	layoutAgentDir(t, work, ca)
	connLog := filepath.Join(work, "connections.jsonl")
	agentLog := filepath.Join(work, "pilot-agent.log")
	cmd := startAgent(t, ns, agent, standin, work, connLog, agentLog)

	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: dialContextIn(ns), DisableKeepAlives: true}}
	// The agent's readiness reads the stand-in's /stats; the stand-in's 15021 proxies to the agent.
	for _, url := range []string{"http://127.0.0.1:15020/healthz/ready", "http://127.0.0.1:15021/healthz/ready"} {
		waitFor(t, 30*time.Second, url+" = 200", func() error { return get200(client, url, "") })
	}
	// 15020 merges what the stand-in serves on 15090.
	if err := get200(client, "http://127.0.0.1:15020/stats/prometheus", "envoy_server_state{} 0"); err != nil {
		t.Errorf("merged metrics: %v", err)
	}
	out, err := exec.Command("ip", "netns", "exec", ns, agent, "request", "GET", "config_dump").Output()
	if err != nil || !bytes.Contains(out, []byte("envoy.admin.v3.BootstrapConfigDump")) {
		t.Errorf("pilot-agent request GET config_dump: %v\n%.300s", err, out)
	}

	t.Run("captured connection reaches the original destination", func(t *testing.T) {
		testCapturedConnection(t, ns, connLog, backendConns)
	})
	t.Run("direct connection to 15001 is logged and closed", func(t *testing.T) {
		testDirectConnection(t, ns, connLog)
	})
	t.Run("SIGTERM to pilot-agent leaves no stand-in behind", func(t *testing.T) {
		testSIGTERMLeavesNoStandin(t, cmd, standin, agentLog)
	})
	if t.Failed() {
		logText, _ := os.ReadFile(agentLog)
		t.Logf("pilot-agent output:\n%s", logText)
	}
}

func testCapturedConnection(t *testing.T, ns, connLog string, backendConns chan net.Addr) {
	src := pingPong(t, ns, backendAddr)
	rec := waitForConnection(t, connLog, func(r connRecord) bool { return r.Src == src })
	want := connRecord{Kind: "connection", Listener: "outbound", Port: 15001, Src: src, OriginalDst: backendAddr,
		Cluster: passthroughCluster, Upstream: backendAddr, Outcome: "forwarded", UID: 0, SrcUID: os.Getuid()}
	rec.Time, rec.Dst = "", ""
	if rec != want {
		t.Errorf("connection log = %+v\nwant %+v", rec, want)
	}
	if n := len(backendConns); n == 0 {
		t.Error("backend saw no connection")
	}
}

func testDirectConnection(t *testing.T, ns, connLog string) {
	c, err := dialIn(ns, "127.0.0.1:15001")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("read = %d, %v; want EOF", n, err)
	}
	src := c.LocalAddr().String()
	rec := waitForConnection(t, connLog, func(r connRecord) bool { return r.Src == src })
	if rec.Outcome != "no_original_dst" || rec.OriginalDst != "" {
		t.Errorf("connection log = %+v", rec)
	}
}

func testSIGTERMLeavesNoStandin(t *testing.T, cmd *exec.Cmd, standin, agentLog string) {
	if len(pidsOf(standin)) != 1 {
		t.Fatalf("stand-in processes before SIGTERM: %v, want one", pidsOf(standin))
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("pilot-agent exited with %v, want 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("pilot-agent still running 30s after SIGTERM")
	}
	waitFor(t, 5*time.Second, "stand-in gone", func() error {
		if p := pidsOf(standin); len(p) > 0 {
			return fmt.Errorf("still running: %v", p)
		}
		return nil
	})
	logText, _ := os.ReadFile(agentLog)
	if !bytes.Contains(logText, []byte(`"graceful":true,"inboundonly":true`)) {
		t.Error("pilot-agent did not POST drain_listeners?inboundonly&graceful before killing Envoy")
	}
}

// layoutAgentDir writes what `pilot-agent proxy sidecar` needs under its working directory, found by
// running it: without var/run/secrets/istio/root-cert.pem (the mesh root, rootPEM) the SDS server does not start;
// the bootstrap template is read from ./var/lib/istio/envoy/envoy_bootstrap_tmpl.json (pkg/bootstrap/instance.go).
func layoutAgentDir(t *testing.T, work string, rootPEM []byte) {
	t.Helper()
	for _, p := range []string{"var/run/secrets/istio/root-cert.pem", "etc/certs/root-cert.pem"} {
		writeFile(t, filepath.Join(work, p), rootPEM)
	}
	tmpl, err := os.ReadFile(filepath.Join(istioModuleDir(t), "tools/packaging/common/envoy_bootstrap.json"))
	if err != nil {
		t.Fatalf("bootstrap template: %v", err)
	}
	writeFile(t, filepath.Join(work, "var/lib/istio/envoy/envoy_bootstrap_tmpl.json"), tmpl)
}

// istioModuleDir finds the Istio module the pilot-agent builder pins (build/istio/go.mod).
func istioModuleDir(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/istio")
	cmd.Dir = "../../build/istio"
	out, err := cmd.Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Fatalf("locating istio.io/istio from ../../build/istio: %v", err)
	}
	return dir
}

func startAgent(t *testing.T, ns, agent, standin, work, connLog, agentLog string) *exec.Cmd {
	t.Helper()
	return runAgent(t, ns, agent, work, agentLog,
		// terminationDrainDuration shortens the agent's wait between drain and SIGKILL (5 s by default).
		"PROXY_CONFIG=binaryPath: "+standin+"\nconfigPath: "+filepath.Join(work, "etc/istio/proxy")+
			"\ndiscoveryAddress: 127.0.0.1:15012\nterminationDrainDuration: 1s\n",
		"POD_NAME=standin-0", "POD_NAMESPACE=default", "SERVICE_ACCOUNT=standin", "INSTANCE_IP="+instanceIP,
		envConnectionLog+"="+connLog,
		// No istiod here: the stand-in gives itself the capture listeners and is ready without CDS or LDS.
		envControlPlane+"="+controlPlaneNone)
}

// runAgent starts `pilot-agent proxy sidecar` in ns with work as its working directory, root's uid and the proxy's
// gid, and env (plus PATH and HOME) as its environment. Cleanup kills it if the test did not stop it.
func runAgent(t *testing.T, ns, agent, work, agentLog string, env ...string) *exec.Cmd {
	t.Helper()
	logFile, err := os.Create(agentLog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logFile.Close() })
	cmd := exec.Command("ip", "netns", "exec", ns, agent, "proxy", "sidecar")
	cmd.Dir = work
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + work}, env...)
	// `ip netns exec` execs pilot-agent in place, so cmd.Process is the agent and signals reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 0, Gid: proxyGID}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

// startBackend listens on addr inside the namespace and answers "pong" to a line.
func startBackend(t *testing.T, ns, addr string) chan net.Addr {
	t.Helper()
	var ln net.Listener
	if err := inNetns(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("backend: %v", err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	seen := make(chan net.Addr, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case seen <- c.RemoteAddr():
			default:
			}
			go func() {
				defer c.Close()
				if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
					_, _ = io.WriteString(c, "pong\n")
				}
			}()
		}
	}()
	return seen
}

func get200(c *http.Client, url, mustContain string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %.200s", resp.StatusCode, body)
	}
	if !strings.Contains(string(body), mustContain) {
		return fmt.Errorf("body lacks %q", mustContain)
	}
	return nil
}

func waitForConnection(t *testing.T, path string, match func(connRecord) bool) connRecord {
	t.Helper()
	var found connRecord
	waitFor(t, 5*time.Second, "connection log line", func() error {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
			var r connRecord
			if json.Unmarshal(line, &r) == nil && match(r) {
				found = r
				return nil
			}
		}
		return fmt.Errorf("no matching line in %q", data)
	})
	return found
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
