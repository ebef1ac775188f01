package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/controller/bootstrap"
	"github.com/istio-sidecar/istio-sidecar/internal/controlplane"
	"github.com/istio-sidecar/istio-sidecar/internal/nomadtest"
)

// TestRunWithRealServers runs the command as the controller job does: the controller's kubeconfig, its Nomad
// token in a file, the mesh root; a meshed job's group gets its token, and SIGTERM ends it.
func TestRunWithRealServers(t *testing.T) {
	cp := controlplane.Start(t, controlplane.BinariesFromEnv(t), controlplane.Options{DeferIstiod: true})
	nomad := nomadtest.Start(t)
	nomad.Namespace(t, "team-a")
	tokenFile := filepath.Join(t.TempDir(), "nomad-token")
	if err := os.WriteFile(tokenFile, []byte(nomad.Token(t, "controller", bootstrap.ControllerPolicy)+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "root-cert.pem")
	if err := os.WriteFile(root, cp.RootCert, 0o400); err != nil {
		t.Fatal(err)
	}
	// The test binary runs the command (see TestRunEndsOnSIGTERM).
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunEndsOnSIGTERM$", "--", "run", "-kubeconfig", cp.ControllerKubeconfig,
		"-nomad-token-file", tokenFile, "-root-cert", root, "-token-ttl", "10m")
	cmd.Env = append(os.Environ(), "ISTIO_SIDECAR_CONTROLLER_RUN=1", "NOMAD_ADDR="+nomad.Addr, "NOMAD_TOKEN=")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("controller:\n%s", stderr.String())
		}
	})

	ns := "team-a"
	j := api.NewServiceJob("web", "web", "global", 50)
	j.Namespace, j.Datacenters = &ns, []string{"dc1"}
	j.AddTaskGroup(api.NewTaskGroup("g", 1).AddTask(api.NewTask("istio-proxy", "istio-sidecar")))
	if _, _, err := nomad.Management.Jobs().Register(j, &api.WriteOptions{Namespace: ns}); err != nil {
		t.Fatal(err)
	}
	nomadtest.Eventually(t, time.Minute, "the group's token", func() error {
		v, _, err := nomad.Management.Variables().Peek("nomad/jobs/web/g", &api.QueryOptions{Namespace: ns})
		if err != nil || v == nil || strings.Count(v.Items["istio_token"], ".") != 2 {
			return fmt.Errorf("%v %v", v, err)
		}
		if v.Items["expires"] == "" || v.Items["root_cert"] != string(cp.RootCert) {
			return fmt.Errorf("variable %v", v.Items)
		}
		return nil
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("SIGTERM did not end it")
	}
}
