package driver

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A job's proxy_config cannot make the real pilot-agent run a command: an exec readiness probe (which
// pilot-agent runs as the proxy user once Envoy is up) is refused at StartTask, by name, and its file never
// appears. Nor can it make Envoy load a config file of the job's, in either spelling of the field.
func TestSecurity_JobProxyConfigRunsNoCommandAndLoadsNoFile(t *testing.T) {
	t.Parallel()
	b := integration(t)
	for _, tc := range []struct {
		field, doc string
		probe      bool // the command writes the file; otherwise the field names a file Envoy would load
	}{
		{"readinessProbe", "readinessProbe:\n  periodSeconds: 1\n  exec:\n    command: [/bin/sh, -c, 'id > %s']\n", true},
		{"readiness_probe", "readiness_probe:\n  periodSeconds: 1\n  exec:\n    command: [/bin/sh, -c, 'id > %s']\n", true},
		{"custom_config_file", "custom_config_file: %s\n", false},
		{"customConfigFile", "customConfigFile: %s\n", false},
		{"proxy_bootstrap_template_path", "proxy_bootstrap_template_path: %s\n", false},
	} {
		t.Run(tc.field, func(t *testing.T) {
			td := newTestDriver(t, b, nil)
			netns := newNetns(t)
			marker := filepath.Join(proxyWritableDir(t), "pwned")
			body := fmt.Sprintf("proxy_config = %s\n", strconv.Quote(fmt.Sprintf(tc.doc, marker)))
			cfg := td.newTask(t, netns, body, nil)
			handle, _, err := td.StartTask(cfg)
			if err == nil && tc.probe {
				t.Cleanup(func() { _ = td.DestroyTask(cfg.ID, true) })
				// Started: give the probe (every second) its chance, to say what it did.
				waitFor(t, 15*time.Second, "the probe's file", func() bool { _, err := os.Stat(marker); return err == nil })
				t.Fatalf("StartTask accepted %s; pilot-agent ran the probe, which wrote %s", tc.field, marker)
			}
			if err == nil {
				t.Cleanup(func() { _ = td.DestroyTask(cfg.ID, true) })
				t.Fatalf("StartTask accepted %s (handle %v)", tc.field, handle != nil)
			}
			if !strings.Contains(err.Error(), "proxy_config: "+tc.field+" (") {
				t.Fatalf("StartTask: %v, want an error naming proxy_config's %s", err, tc.field)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatalf("%s exists although the start was refused", marker)
			}
			assertNoProxyIn(t, cfg, "after a refused start")
		})
	}
}

// The PROXY_CONFIG pilot-agent really got, read from its environment: the driver's binary and ports, and
// none of the fields that would load a file or run a command, whatever the job's allowed fields were.
func TestSecurity_RenderedProxyConfigHoldsNoJobFile(t *testing.T) {
	t.Parallel()
	b, taskDir := startedProxy(t, `
drain_duration = "1s"
proxy_config   = "tracing: {sampling: 10}\nextraStatTags: [tenant]\n"
`)
	pid := pilotAgentPid(t, taskDir)
	doc := procEnv(t, pid)["PROXY_CONFIG"]
	for _, banned := range []string{"customConfigFile", "proxyBootstrapTemplatePath", "readinessProbe", "proxyMetadata"} {
		if strings.Contains(doc, banned) {
			t.Errorf("PROXY_CONFIG holds %s: %s", banned, doc)
		}
	}
	if !strings.Contains(doc, `"binaryPath":"`+b.envoy+`"`) || !strings.Contains(doc, `"statusPort":15020`) ||
		!strings.Contains(doc, `"extraStatTags":["tenant"]`) {
		t.Errorf("PROXY_CONFIG: %s", doc)
	}
}

// The real pilot-agent, and the Envoy it starts, can gain no privilege (no_new_privs), have nothing in their
// bounding set, hold no capability, and hold no descriptor handed on by the executor that started them.
func TestSecurity_ProxyRunsWithNoPrivilegeToGainAndNoInheritedDescriptor(t *testing.T) {
	t.Parallel()
	_, taskDir := startedProxy(t, `drain_duration = "1s"`)
	for _, pid := range procsIn(taskDir) {
		for field, want := range map[string]string{"NoNewPrivs:": "1", "CapBnd:": "0000000000000000",
			"CapAmb:": "0000000000000000", "CapEff:": "0000000000000000", "CapPrm:": "0000000000000000"} {
			if got := procField(pid, field); got != want {
				t.Errorf("%s (pid %d): %s %s, want %s", procExe(pid), pid, field, got, want)
			}
		}
	}
	pid := pilotAgentPid(t, taskDir)
	parent, err := strconv.Atoi(procField(pid, "PPid:"))
	if err != nil {
		t.Fatal(err)
	}
	if inherited := sharedDescriptors(t, parent, pid); len(inherited) > 0 {
		t.Errorf("pilot-agent (pid %d) holds descriptors of its parent %s (pid %d): %v", pid, procExe(parent), parent, inherited)
	}
}

// startedProxy starts a task of config body in a fresh group namespace, ready, and returns its task dir.
func startedProxy(t *testing.T, body string) (proxyBinaries, string) {
	t.Helper()
	b := integration(t)
	td := newTestDriver(t, b, nil)
	cfg := td.newTask(t, newNetns(t), body, nil)
	td.start(t, cfg)
	return b, cfg.TaskDir().Dir
}

// proxyWritableDir is a directory the proxy user can write to: where a probe's command would leave its mark.
func proxyWritableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "isc-probe-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// pilotAgentPid is the pilot-agent running in the task dir.
func pilotAgentPid(t *testing.T, taskDir string) int {
	t.Helper()
	for _, pid := range procsIn(taskDir) {
		if filepath.Base(procExe(pid)) == "pilot-agent" {
			return pid
		}
	}
	t.Fatalf("no pilot-agent in %s", taskDir)
	return 0
}

func procEnv(t *testing.T, pid int) map[string]string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range strings.Split(string(data), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}

// sharedDescriptors lists the child's descriptors above 2 that are one open file with the parent's descriptor
// of the same number, as kcmp(2) tells: what an exec handed on. Two processes that open the same file each
// (Go's runtime keeps its cgroup CPU files open) have two open files, which kcmp tells apart.
func sharedDescriptors(t *testing.T, parent, child int) []string {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", child))
	if err != nil {
		t.Fatal(err)
	}
	const kcmpFile = 0
	var shared []string
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 {
			continue
		}
		r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(child), uintptr(parent), kcmpFile, uintptr(fd), uintptr(fd), 0)
		if errno == unix.ENOSYS || errno == unix.EPERM {
			t.Fatalf("kcmp(2) cannot compare descriptors here: %v", errno)
		}
		if errno == 0 && r == 0 {
			target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", child, fd))
			shared = append(shared, fmt.Sprintf("%d -> %s", fd, target))
		}
	}
	return shared
}
