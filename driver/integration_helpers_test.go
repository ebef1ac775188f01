package driver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/helper/uuid"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"
	dtestutil "github.com/hashicorp/nomad/plugins/drivers/testutils"
)

// The integration tests run the real pilot-agent with an Envoy: the stand-in from testdoubles/standin-envoy by default,
// a real Envoy when ISTIO_SIDECAR_ENVOY points at one. `make test` sets these and ISTIO_SIDECAR_REQUIRE_INTEGRATION,
// so that in CI a missing piece fails instead of skipping.
type proxyBinaries struct {
	pilotAgent, envoy, template string
	standin                     bool // the Envoy is our stand-in, which has test modes (STANDIN_ENVOY_MODE)
}

func integration(t *testing.T) proxyBinaries {
	t.Helper()
	skip := func(reason string) {
		if os.Getenv("ISTIO_SIDECAR_REQUIRE_INTEGRATION") != "" {
			t.Fatalf("integration test cannot run: %s", reason)
		}
		t.Skipf("integration test skipped: %s (make test sets everything up)", reason)
	}
	if os.Geteuid() != 0 {
		skip("needs root (network namespaces, the proxy user)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skip("needs iproute2's ip")
	}
	if _, err := user.LookupId("1337"); err != nil {
		skip("needs a user with UID 1337 (useradd --system --uid 1337 --user-group istio-proxy)")
	}
	b := proxyBinaries{
		pilotAgent: os.Getenv("ISTIO_SIDECAR_PILOT_AGENT"),
		envoy:      os.Getenv("ISTIO_SIDECAR_ENVOY"),
		template:   os.Getenv("ISTIO_SIDECAR_BOOTSTRAP_TEMPLATE"),
	}
	if b.pilotAgent == "" || b.envoy == "" {
		skip("ISTIO_SIDECAR_PILOT_AGENT and ISTIO_SIDECAR_ENVOY are not set")
	}
	if b.template == "" {
		b.template = filepath.Join(filepath.Dir(b.pilotAgent), "envoy_bootstrap_tmpl.json")
	}
	out, err := exec.Command(b.envoy, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", b.envoy, err)
	}
	// The stand-in reports an all-zero build SHA, which no real Envoy build has.
	b.standin = strings.Contains(string(out), strings.Repeat("0", 40)+"/")
	return b
}

func (b proxyBinaries) needStandin(t *testing.T, why string) {
	if !b.standin {
		t.Skipf("needs the stand-in Envoy's test modes (%s); ISTIO_SIDECAR_ENVOY is a real Envoy", why)
	}
}

// newNetns creates a throwaway network namespace with loopback and one address, as Nomad's bridge network would
// give a group, and removes it when the test ends.
func newNetns(t *testing.T) string {
	t.Helper()
	name := "isc-drv-" + uuid.Generate()[:8]
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", name).Run() })
	run("-n", name, "link", "set", "lo", "up")
	// Both ends of the pair stay inside the namespace: the host gains no link (no dummy module here).
	run("-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
	run("-n", name, "addr", "add", "10.213.0.2/24", "dev", "eth0")
	run("-n", name, "link", "set", "eth0", "up")
	run("-n", name, "link", "set", "eth1", "up")
	return "/var/run/netns/" + name
}

type testDriver struct {
	*dtestutil.DriverHarness
	impl *Driver
}

func newTestDriver(t *testing.T, b proxyBinaries, mutate func(*Config)) testDriver {
	t.Helper()
	d := New(t.Context(), testLogger(t))
	// No t.Cleanup(h.Kill): MkAllocDir's cleanup closes the client, which stops the server, and Kill stopping it
	// a second time races inside go-plugin (the race detector flags it).
	h := dtestutil.NewDriverHarness(t, d)
	c := defaultConfig()
	c.PilotAgentPath, c.EnvoyPath, c.BootstrapTemplatePath = b.pilotAgent, b.envoy, b.template
	// Nothing listens here: pilot-agent keeps retrying the CA in the background and still starts Envoy.
	c.DiscoveryAddress = "127.0.0.1:15012"
	c.ReadinessTimeout = "60s"
	// The stand-in's test knobs travel in the task's env, which reaches the proxy only through a passthrough.
	c.EnvPassthrough = []string{"ISTIO_META_", "STANDIN_ENVOY_"}
	if mutate != nil {
		mutate(&c)
	}
	var raw []byte
	if err := base.MsgPackEncode(&raw, &c); err != nil {
		t.Fatal(err)
	}
	if err := h.SetConfig(&base.Config{PluginConfig: raw}); err != nil {
		t.Fatalf("SetConfig: %v", err)
	}
	return testDriver{DriverHarness: h, impl: d}
}

// newTask builds a task in a fresh alloc dir whose secrets/ holds a root certificate, as a template would,
// with logmon collecting its output.
func (td testDriver) newTask(t *testing.T, netns, body string, env map[string]string) *drivers.TaskConfig {
	t.Helper()
	return td.task(t, netns, body, env, true)
}

// newRejectedTask is a task that StartTask is expected to refuse: no logmon, whose fifos would wait seconds
// for a writer that never comes.
func (td testDriver) newRejectedTask(t *testing.T, netns, body string) *drivers.TaskConfig {
	t.Helper()
	return td.task(t, netns, body, nil, false)
}

func (td testDriver) task(t *testing.T, netns, body string, env map[string]string, logs bool) *drivers.TaskConfig {
	t.Helper()
	cfg := &drivers.TaskConfig{
		ID:            uuid.Generate(),
		AllocID:       uuid.Generate(),
		Name:          "istio-proxy",
		JobName:       "payments",
		JobID:         "payments",
		TaskGroupName: "api",
		Namespace:     "default",
		Env:           env,
	}
	if netns != "" {
		cfg.NetworkIsolation = &drivers.NetworkIsolationSpec{Mode: drivers.NetIsolationModeGroup, Path: netns}
	}
	if err := EncodeTaskConfigHCL(body, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(td.MkAllocDir(cfg, logs))
	// The harness's temp dir is private to root; the proxy user must reach its working tree.
	if err := os.Chmod(filepath.Dir(cfg.AllocDir), 0o755); err != nil {
		t.Fatal(err)
	}
	writeRootCert(t, filepath.Join(cfg.TaskDir().SecretsDir, "root-cert.pem"))
	return cfg
}

func writeRootCert(t *testing.T, path string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"cluster.local"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// procsIn lists the processes whose working directory is dir: pilot-agent runs in the task dir and Envoy
// inherits it, so this finds both without confusing parallel tests that share the binaries.
func procsIn(dir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		if err == nil && cwd == dir {
			if state := procField(pid, "State:"); !strings.HasPrefix(state, "Z") {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

func procField(pid int, key string) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func procExe(pid int) string {
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return exe
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// taskLogs returns the task's stdout and stderr as logmon wrote them, for failure messages.
func taskLogs(cfg *drivers.TaskConfig) string {
	var b strings.Builder
	for _, stream := range []string{"stdout", "stderr"} {
		data, _ := os.ReadFile(filepath.Join(cfg.TaskDir().LogDir, cfg.Name+"."+stream+".0"))
		fmt.Fprintf(&b, "--- %s ---\n%s\n", stream, data)
	}
	return b.String()
}

// start starts the task and fails the test, with the task's logs, when it does not start. The task is
// destroyed when the test ends, as Nomad destroys every task after its exit: a task that exited on its own
// keeps its executor, which would outlive the test (and hold whatever descriptors it inherited).
func (td testDriver) start(t *testing.T, cfg *drivers.TaskConfig) *drivers.TaskHandle {
	t.Helper()
	handle, _, err := td.StartTask(cfg)
	if err != nil {
		t.Fatalf("StartTask: %v\n%s", err, taskLogs(cfg))
	}
	t.Cleanup(func() { _ = td.DestroyTask(cfg.ID, true) })
	return handle
}

// assertNoProxyIn fails the test if any process still runs in the task dir (pilot-agent or Envoy).
func assertNoProxyIn(t *testing.T, cfg *drivers.TaskConfig, when string) {
	t.Helper()
	if left := procsIn(cfg.TaskDir().Dir); len(left) != 0 {
		t.Fatalf("processes left %s: %v", when, left)
	}
}
