package driver

import (
	"fmt"
	"os"
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

	"github.com/istio-sidecar/istio-sidecar/internal/testenv"
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
		t.Helper()
		testenv.SkipOrFail(t, "integration test cannot run here: %s (make test sets everything up)", reason)
	}
	testenv.RequireRoot(t, "network namespaces, the proxy user")
	testenv.RequireTools(t, "ip")
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
	var err error
	if _, b.standin, err = testenv.EnvoyVersion(b.envoy); err != nil {
		t.Fatal(err)
	}
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
	ns := testenv.NewNetns(t, "isc-drv")
	ns.AddInterface(t, "10.213.0.2/24")
	return ns.Path
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
	// A token the tests' stand-in never presents to a CA: the start requires one to be there.
	if err := os.WriteFile(filepath.Join(cfg.TaskDir().SecretsDir, "istio-token"), []byte("test-placeholder-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func writeRootCert(t *testing.T, path string) {
	t.Helper()
	pem, err := testenv.RootCert("istio-sidecar driver test root")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem, 0o644); err != nil {
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
