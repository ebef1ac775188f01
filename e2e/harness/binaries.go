package harness

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// modulePath identifies this repository's go.mod when looking for the repository root.
const modulePath = "github.com/istio-sidecar/istio-sidecar"

// NomadVersion is the only Nomad the harness runs: v1.6.3 is the newest MPL-2.0 release.
const NomadVersion = "v1.6.3"

// builderWait bounds how long a test waits for a builder script run by someone else (a cold Nomad build takes
// minutes on two cores) before running the script itself.
const builderWait = 15 * time.Minute

// RepoRoot returns the repository root: the nearest directory at or above the working directory whose go.mod
// declares this module. Tests run in their package directory, so this works from any package in the repository.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(data, []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod for " + modulePath + " at or above the working directory")
		}
		dir = parent
	}
}

// builds memoises the builder scripts' output per test binary: each script is run at most once.
var builds sync.Map // script path → *buildResult

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// NomadBin returns NOMAD_BIN, or else the binary built (or found cached) by build/nomad.sh. It fails the test
// when the binary is not Nomad v1.6.3.
func NomadBin(t T) string {
	t.Helper()
	bin := fromEnvOrBuilder(t, "NOMAD_BIN", "build/nomad.sh")
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", bin, err, out)
	}
	if !strings.HasPrefix(string(out), "Nomad "+NomadVersion+"\n") && !strings.HasPrefix(string(out), "Nomad "+NomadVersion+" ") {
		t.Fatalf("%s is not Nomad %s (the only Nomad this project runs): %s", bin, NomadVersion, firstLine(out))
	}
	return bin
}

// PilotAgentBin returns ISTIO_SIDECAR_PILOT_AGENT, or else the pilot-agent built by build/pilot-agent.sh.
func PilotAgentBin(t T) string {
	t.Helper()
	return fromEnvOrBuilder(t, "ISTIO_SIDECAR_PILOT_AGENT", "build/pilot-agent.sh")
}

// BootstrapTemplate returns ISTIO_SIDECAR_BOOTSTRAP_TEMPLATE, or else Istio's envoy_bootstrap_tmpl.json that
// build/pilot-agent.sh installs beside the pilot-agent it built.
func BootstrapTemplate(t T) string {
	t.Helper()
	if p := os.Getenv("ISTIO_SIDECAR_BOOTSTRAP_TEMPLATE"); p != "" {
		return p
	}
	return filepath.Join(filepath.Dir(PilotAgentBin(t)), "envoy_bootstrap_tmpl.json")
}

// PluginBin returns ISTIO_SIDECAR_BIN, or else bin/istio-sidecar at the repository root, and fails the test when
// the file is not there: the e2e suite tests a built plugin and never builds it behind the user's back.
func PluginBin(t T) string {
	t.Helper()
	return existingBin(t, "ISTIO_SIDECAR_BIN", "bin/istio-sidecar", "build it with make build")
}

// EnvoyBin returns ISTIO_SIDECAR_ENVOY, or else bin/standin-envoy at the repository root.
func EnvoyBin(t T) string {
	t.Helper()
	return existingBin(t, "ISTIO_SIDECAR_ENVOY", "bin/standin-envoy",
		"build it with go build -o bin/standin-envoy ./testdoubles/standin-envoy, or point ISTIO_SIDECAR_ENVOY at a real Envoy")
}

// BuildTestapp builds testdoubles/testapp into dir and returns its path. The binary is static, so that it runs in
// an exec task's chroot holding nothing but itself.
func BuildTestapp(dir string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "testapp")
	cmd := exec.Command("go", "build", "-o", path, "./testdoubles/testapp")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./testdoubles/testapp: %w\n%s", err, out)
	}
	return path, nil
}

func existingBin(t T, env, rel, hint string) string {
	t.Helper()
	path := os.Getenv(env)
	if path == "" {
		root, err := RepoRoot()
		if err != nil {
			t.Fatalf("locating %s: %v", rel, err)
		}
		path = filepath.Join(root, rel)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if st, err := os.Stat(abs); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("no executable at %s (%s): %s", abs, env, hint)
	}
	return abs
}

func fromEnvOrBuilder(t T, env, script string) string {
	t.Helper()
	if path := os.Getenv(env); path != "" {
		abs, err := filepath.Abs(path)
		if err != nil {
			t.Fatalf("%s=%s: %v", env, path, err)
		}
		return abs
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("locating %s: %v", script, err)
	}
	v, _ := builds.LoadOrStore(script, &buildResult{})
	res := v.(*buildResult)
	res.once.Do(func() { res.path, res.err = runBuilder(t, root, script) })
	if res.err != nil {
		t.Fatalf("%s is unset and %v", env, res.err)
	}
	return res.path
}

// runBuilder runs a builder script and returns the path it prints. When another run of the same script is in
// progress (a concurrent `make`), it waits for that one first: the script then finds its cached output instead of
// starting a second multi-minute build on the same cache.
func runBuilder(t T, root, script string) (string, error) {
	t.Helper()
	err := poll(builderWait, 2*time.Second, nil, "another "+script+" to finish", func() (bool, string) {
		procs, err := findProcs(func(p process) bool { return strings.Contains(strings.Join(p.Cmdline, " "), script) })
		if err != nil {
			return false, err.Error()
		}
		return len(procs) == 0, fmt.Sprintf("running as pid %v", pidsOf(procs))
	})
	if err != nil {
		return "", err
	}
	t.Logf("running %s (may build for minutes on a cold cache)", script)
	cmd := exec.Command("bash", filepath.Join(root, script))
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s failed: %w\n%s", script, err, stderr.String())
	}
	path := strings.TrimSpace(lastLine(out))
	if path == "" {
		return "", fmt.Errorf("%s printed no path", script)
	}
	return path, nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// XDSStandinBin returns ISTIO_SIDECAR_ENVOY_XDS, or else bin/standin-envoy-xds: the stand-in as it is by default,
// taking its listeners, clusters and certificates from istiod through pilot-agent (`make standin`).
func XDSStandinBin(t T) string {
	t.Helper()
	return existingBin(t, "ISTIO_SIDECAR_ENVOY_XDS", "bin/standin-envoy-xds", "build it with make standin")
}

// ControllerBin returns ISTIO_SIDECAR_CONTROLLER, or else bin/istio-sidecar-controller (`make build`).
func ControllerBin(t T) string {
	t.Helper()
	return existingBin(t, "ISTIO_SIDECAR_CONTROLLER", "bin/istio-sidecar-controller", "build it with make build")
}

// ControlPlaneBins are the control plane's binaries: the environment's (the Makefile's CONTROL_PLANE_ENV), else
// what the builders print, building them if they must.
type ControlPlaneBins struct {
	Etcd, KubeAPIServer, PilotDiscovery string
}

// ControlPlaneBinaries returns them for the test.
func ControlPlaneBinaries(t T) ControlPlaneBins {
	t.Helper()
	return ControlPlaneBins{
		Etcd:           fromEnvOrBuilder(t, "ISTIO_SIDECAR_ETCD", "build/etcd.sh"),
		KubeAPIServer:  fromEnvOrBuilder(t, "ISTIO_SIDECAR_KUBE_APISERVER", "build/kube-apiserver.sh"),
		PilotDiscovery: fromEnvOrBuilder(t, "ISTIO_SIDECAR_ISTIOD", "build/istiod.sh"),
	}
}
