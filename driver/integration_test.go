package driver

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/istio-sidecar/istio-sidecar/driver/proxy"
)

// events collects the driver's task events as `nomad alloc status` would show them.
type events struct {
	mu   sync.Mutex
	msgs []string
}

func (td testDriver) events(t *testing.T) *events {
	ev := &events{}
	ch, err := td.TaskEvents(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for e := range ch {
			ev.mu.Lock()
			ev.msgs = append(ev.msgs, e.Message)
			ev.mu.Unlock()
		}
	}()
	return ev
}

// contains reports whether any event holds substr.
func (e *events) contains(substr string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range e.msgs {
		if strings.Contains(m, substr) {
			return true
		}
	}
	return false
}

func (e *events) has(prefix string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range e.msgs {
		if strings.HasPrefix(m, prefix) {
			return true
		}
	}
	return false
}

func ready(t *testing.T, netns string) bool {
	resp, err := proxy.Client(netns, time.Second).Get(proxy.ReadyURL)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func TestStartTask_ReadyThenStop(t *testing.T) {
	t.Parallel()
	b := integration(t)
	td := newTestDriver(t, b, nil)
	ev := td.events(t)
	netns := newNetns(t)
	cfg := td.newTask(t, netns, `drain_duration = "1s"`, nil)

	td.start(t, cfg)
	// StartTask returned, so the proxy must already be ready: this is what holds the app back.
	if !ready(t, netns) {
		t.Fatalf("StartTask returned before %s answered 200\n%s", proxy.ReadyURL, taskLogs(cfg))
	}
	waitFor(t, 5*time.Second, "the started and ready events", func() bool {
		return ev.has("Proxy started: pilot-agent pid") && ev.has("Proxy ready after")
	})

	status, err := td.InspectTask(cfg.ID)
	if err != nil || status.State != drivers.TaskStateRunning || status.DriverAttributes["netns"] != netns {
		t.Fatalf("InspectTask: %+v %v", status, err)
	}
	taskDir := cfg.TaskDir().Dir
	assertProxyRunsAsTheProxyUser(t, taskDir)

	if err := td.StopTask(cfg.ID, 10*time.Second, ""); err != nil {
		t.Fatalf("StopTask: %v", err)
	}
	result := waitResult(t, td, cfg.ID)
	if !result.Successful() {
		t.Fatalf("a requested stop must not read as a failure: %+v", result)
	}
	if left := procsIn(taskDir); len(left) != 0 {
		t.Fatalf("processes left after StopTask: %v", left)
	}
	if !ev.has("Draining: listeners drained for 1s, then SIGTERM") {
		t.Errorf("no draining event: %v", ev.msgs)
	}
	if b.standin {
		// Envoy was asked to drain its listeners before it was stopped (the stand-in logs what it receives).
		waitFor(t, 5*time.Second, "Envoy's drain_listeners in the task log", func() bool {
			return strings.Contains(taskLogs(cfg), `"standin_envoy":"drain_listeners"`)
		})
	}
	if err := td.DestroyTask(cfg.ID, true); err != nil {
		t.Fatalf("DestroyTask: %v", err)
	}
}

// assertProxyRunsAsTheProxyUser checks pilot-agent and Envoy run as the proxy user with no supplementary
// group, and that the files the driver owns in their tree are the proxy's or root's as they must be.
func assertProxyRunsAsTheProxyUser(t *testing.T, taskDir string) {
	t.Helper()
	pids := procsIn(taskDir)
	if len(pids) != 2 {
		t.Fatalf("want pilot-agent and Envoy in %s, found pids %v", taskDir, pids)
	}
	for _, pid := range pids {
		if uid := strings.Fields(procField(pid, "Uid:")); len(uid) == 0 || uid[1] != "1337" {
			t.Errorf("%s (pid %d) runs with UIDs %v, want the proxy user 1337", procExe(pid), pid, uid)
		}
		// Nomad 1.6.3's executor would leave root's group 0 among the supplementary groups.
		if groups := procField(pid, "Groups:"); groups != "" {
			t.Errorf("%s (pid %d) has supplementary groups %q, want none", procExe(pid), pid, groups)
		}
	}
	assertProxyOnlySecret(t, filepath.Join(taskDir, proxy.RootCertPath))
	// pilot-agent applies a proxy.istio.io/config annotation from its cwd over PROXY_CONFIG: the driver owns it.
	if fi, err := os.Stat(filepath.Join(taskDir, "etc/istio/pod/annotations")); err != nil || fi.Size() != 0 || fileOwner(fi) != 0 {
		t.Errorf("etc/istio/pod/annotations must exist, empty and root's: %v %v", fi, err)
	}
}

func assertProxyOnlySecret(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o400 {
		t.Errorf("%s has mode %s, want 0400", path, fi.Mode().Perm())
	}
	if uid := fileOwner(fi); uid != 1337 {
		t.Errorf("%s is owned by %d, want the proxy user", path, uid)
	}
}

func waitResult(t *testing.T, td testDriver, id string) *drivers.ExitResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ch, err := td.WaitTask(ctx, id)
	if err != nil {
		t.Fatalf("WaitTask: %v", err)
	}
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
		t.Fatalf("no exit result within 30s")
		return nil
	}
}

func TestStartTask_ReadinessTimeoutIsRecoverableAndLeavesNothing(t *testing.T) {
	t.Parallel()
	b := integration(t)
	b.needStandin(t, "never-ready")
	td := newTestDriver(t, b, nil)
	netns := newNetns(t)
	cfg := td.newTask(t, netns, `readiness_timeout = "3s"`, map[string]string{"STANDIN_ENVOY_MODE": "never-ready"})

	_, _, err := td.StartTask(cfg)
	if err == nil {
		t.Fatal("StartTask succeeded with an Envoy that never becomes ready")
	}
	if !structs.IsRecoverable(err) {
		t.Errorf("a readiness timeout must be recoverable so the restart policy retries: %v", err)
	}
	// What was still missing: an Envoy that never initialises never opens its health listener.
	if !strings.Contains(err.Error(), "proxy not ready: GET "+proxy.ReadyURL+": nothing listens on 15021") {
		t.Errorf("the error must say what was still missing: %v", err)
	}
	assertNoProxyIn(t, cfg, "after a failed start")
	if _, err := td.InspectTask(cfg.ID); err == nil {
		t.Fatalf("a failed start left a task behind")
	}
}

func TestStopTask_KillsTheGroupWhenEnvoyIgnoresSIGTERM(t *testing.T) {
	t.Parallel()
	b := integration(t)
	b.needStandin(t, "ignore-sigterm")
	td := newTestDriver(t, b, nil)
	netns := newNetns(t)
	// A drain longer than the kill timeout: pilot-agent is still waiting to kill Envoy when the executor
	// escalates, so only the process-group kill can take Envoy down.
	cfg := td.newTask(t, netns, `drain_duration = "60s"`, map[string]string{"STANDIN_ENVOY_MODE": "ignore-sigterm"})
	td.start(t, cfg)
	if err := td.StopTask(cfg.ID, 2*time.Second, "SIGTERM"); err != nil {
		t.Fatalf("StopTask: %v", err)
	}
	waitResult(t, td, cfg.ID)
	assertNoProxyIn(t, cfg, "after the kill timeout")
}

// A proxy that dies before it is ready fails the start with its own last words, not just an exit code.
func TestStartTask_ProxyDyingEarlySaysWhy(t *testing.T) {
	t.Parallel()
	b := integration(t)
	b.needStandin(t, "an unknown mode makes it exit at once")
	td := newTestDriver(t, b, nil)
	cfg := td.newTask(t, newNetns(t), "", map[string]string{"STANDIN_ENVOY_MODE": "no-such-mode"})
	_, _, err := td.StartTask(cfg)
	if err == nil || !strings.Contains(err.Error(), "proxy exited before it was ready") || !strings.Contains(err.Error(), "its last log line:") {
		t.Fatalf("got %v", err)
	}
}

func TestWaitTask_EnvoyCrashIsAFailure(t *testing.T) {
	t.Parallel()
	b := integration(t)
	b.needStandin(t, "crash")
	td := newTestDriver(t, b, nil)
	netns := newNetns(t)
	cfg := td.newTask(t, netns, "", map[string]string{"STANDIN_ENVOY_MODE": "crash", "STANDIN_ENVOY_CRASH_AFTER": "1s"})
	td.start(t, cfg)
	result := waitResult(t, td, cfg.ID)
	if result.Successful() || result.Err == nil || !strings.Contains(result.Err.Error(), "envoy exited unexpectedly") {
		t.Fatalf("an Envoy crash must read as a failure, got %+v", result)
	}
	assertNoProxyIn(t, cfg, "after the crash")
}

// A new plugin instance recovers the task from the handle alone (through real gRPC, which drops the raw driver
// config): the same proxy keeps running, no second one starts, and it stops cleanly. The e2e suite kills the
// real plugin process with SIGKILL.
func TestRecoverTask_AfterThePluginIsReplaced(t *testing.T) {
	t.Parallel()
	b := integration(t)
	first := newTestDriver(t, b, nil)
	netns := newNetns(t)
	cfg := first.newTask(t, netns, `drain_duration = "1s"`, nil)
	handle := first.start(t, cfg)
	before := procsIn(cfg.TaskDir().Dir)

	// A new driver instance knows nothing of the task, as after the plugin process was killed; only the
	// handle, which Nomad keeps in its state, carries it over.
	second := newTestDriver(t, b, nil)
	if err := second.RecoverTask(handle); err != nil {
		t.Fatalf("RecoverTask: %v", err)
	}
	if err := second.RecoverTask(handle); err != nil {
		t.Fatalf("RecoverTask must be idempotent: %v", err)
	}
	status, err := second.InspectTask(cfg.ID)
	if err != nil || status.State != drivers.TaskStateRunning {
		t.Fatalf("recovered task: %+v %v", status, err)
	}
	if after := procsIn(cfg.TaskDir().Dir); len(after) != len(before) || after[0] != before[0] {
		t.Fatalf("recovery changed the proxy's processes: before %v, after %v", before, after)
	}
	if !ready(t, netns) {
		t.Fatalf("the recovered proxy is not ready")
	}
	if err := second.StopTask(cfg.ID, 10*time.Second, ""); err != nil {
		t.Fatalf("StopTask after recovery: %v", err)
	}
	if r := waitResult(t, second, cfg.ID); !r.Successful() {
		t.Fatalf("stop after recovery: %+v", r)
	}
	assertNoProxyIn(t, cfg, "after the stop")
}

func TestStartTask_BadConfigStartsNothing(t *testing.T) {
	t.Parallel()
	b := integration(t)
	td := newTestDriver(t, b, nil)
	netns := newNetns(t)
	cases := []struct{ body, want string }{
		{`log_level = "loud"`, `log_level: "loud"`},
		{`service_account = "Not_Valid"`, `service_account: "Not_Valid"`},
		{`root_cert_path = "../../etc/shadow"`, `root_cert_path: "../../etc/shadow" must be a path inside the task directory`},
		{`root_cert_path = "secrets/absent.pem"`, `root_cert_path: "secrets/absent.pem" is not in the task directory`},
	}
	for _, tc := range cases {
		cfg := td.newRejectedTask(t, netns, tc.body)
		_, _, err := td.StartTask(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.body, err, tc.want)
		}
		if structs.IsRecoverable(err) {
			t.Errorf("%s: a config error must not be retried: %v", tc.body, err)
		}
		if left := procsIn(cfg.TaskDir().Dir); len(left) != 0 {
			t.Errorf("%s: processes started: %v", tc.body, left)
		}
	}
}

// A symlink planted in the task dir must not let a job read a host file through the root-run driver.
func TestStartTask_RootCertSymlinkOutOfTaskDirIsRefused(t *testing.T) {
	t.Parallel()
	b := integration(t)
	td := newTestDriver(t, b, nil)
	cfg := td.newRejectedTask(t, newNetns(t), `root_cert_path = "secrets/link.pem"`)
	if err := os.Symlink("/etc/hostname", filepath.Join(cfg.TaskDir().SecretsDir, "link.pem")); err != nil {
		t.Fatal(err)
	}
	_, _, err := td.StartTask(cfg)
	if err == nil || !strings.Contains(err.Error(), "root_cert_path") {
		t.Fatalf("got %v, want a refusal naming root_cert_path", err)
	}
}

func TestStopAndDestroy_UnknownTaskIsNotAnError(t *testing.T) {
	b := integration(t)
	td := newTestDriver(t, b, nil)
	if err := td.StopTask("no-such-task", time.Second, ""); err != nil {
		t.Errorf("StopTask: %v", err)
	}
	if err := td.DestroyTask("no-such-task", true); err != nil {
		t.Errorf("DestroyTask: %v", err)
	}
	if _, err := td.InspectTask("no-such-task"); !errors.Is(err, drivers.ErrTaskNotFound) && err == nil {
		t.Errorf("InspectTask of an unknown task must fail")
	}
}

func TestExecAndStats_ReachTheProxy(t *testing.T) {
	t.Parallel()
	b := integration(t)
	td := newTestDriver(t, b, nil)
	netns := newNetns(t)
	cfg := td.newTask(t, netns, `drain_duration = "1s"`, nil)
	td.start(t, cfg)
	t.Cleanup(func() { _ = td.StopTask(cfg.ID, 5*time.Second, "") })

	// What `nomad alloc exec -task istio-proxy <alloc> pilot-agent request GET config_dump` runs: it must reach
	// the admin port on the loopback of the group's namespace.
	res, err := td.ExecTask(cfg.ID, []string{b.pilotAgent, "request", "GET", "config_dump"}, 20*time.Second)
	// ExecTask keeps the last 4 KiB of output (drivers.CheckBufSize); any stretch of a dump has typed configs.
	if err != nil || res.ExitResult.ExitCode != 0 || !strings.Contains(string(res.Stdout), `"@type": "type.googleapis.com/envoy.`) {
		t.Fatalf("pilot-agent request GET config_dump: %v %+v %s", err, res.ExitResult, res.Stdout)
	}
	if err := td.SignalTask(cfg.ID, "SIGBOGUS"); err == nil || !strings.Contains(err.Error(), "SIGBOGUS") {
		t.Errorf("an unknown signal must be refused by name, got %v", err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	stats, err := td.TaskStats(ctx, cfg.ID, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for usage := range stats {
		if usage.ResourceUsage.MemoryStats.RSS > 0 || len(usage.Pids) >= 2 {
			if len(usage.Pids) < 2 {
				t.Fatalf("stats cover %d processes, want pilot-agent and Envoy", len(usage.Pids))
			}
			return
		}
	}
	t.Fatal("no usable stats within 10s")
}
