package bootstrap_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/internal/testenv"

	"github.com/istio-sidecar/istio-sidecar/internal/nomadtest"
)

// devAgent runs `nomad agent -dev` on loopback, with ACLs on when acl says so, and returns a client (holding the
// bootstrapped management token with ACLs). raw_exec is on for the stand-in of the API server's job.
func devAgent(t *testing.T, acl bool) *api.Client {
	t.Helper()
	bin := os.Getenv("NOMAD_BIN")
	if bin == "" {
		testenv.SkipOrFail(t, "needs a Nomad v1.6.3 agent: set NOMAD_BIN (make sets it from build/nomad.sh)")
	}
	testenv.RequireRoot(t, "the Nomad dev agent's client")
	dir := t.TempDir()
	ports := freePorts(t, 3)
	conf := fmt.Sprintf(`ports {
  http = %d
  rpc  = %d
  serf = %d
}
acl {
  enabled = %t
}
plugin "raw_exec" {
  config {
    enabled = true
  }
}
disable_update_check = true
`, ports[0], ports[1], ports[2], acl)
	confPath := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "agent.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "agent", "-dev", "-bind=127.0.0.1", "-network-interface=lo", "-config="+confPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { stopAgent(t, cmd, exited, logPath) })
	cfg := api.DefaultConfig()
	cfg.Address = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nomadtest.Eventually(t, time.Minute, "the dev agent's leader", func() error {
		select {
		case <-exited:
			return fmt.Errorf("agent exited")
		default:
		}
		if !acl {
			_, err := client.Status().Leader()
			return err
		}
		tok, _, err := client.ACLTokens().Bootstrap(nil)
		if err == nil {
			client.SetSecretID(tok.SecretID)
		}
		return err
	})
	nomadtest.Eventually(t, time.Minute, "the dev agent's node ready", func() error {
		nodes, _, err := client.Nodes().List(nil)
		if err == nil && (len(nodes) == 0 || nodes[0].Status != "ready") {
			err = fmt.Errorf("nodes %v", nodes)
		}
		return err
	})
	return client
}

func stopAgent(t *testing.T, cmd *exec.Cmd, exited chan struct{}, logPath string) {
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	if t.Failed() {
		if b, err := os.ReadFile(logPath); err == nil {
			lines := strings.Split(string(b), "\n")
			t.Logf("nomad agent log (end):\n%s", strings.Join(lines[max(0, len(lines)-80):], "\n"))
		}
	}
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// registerAPIServer runs a raw_exec job kube-apiserver in istio-system whose Nomad service points at the test's
// API server: what the real job registers, without running the API server under Nomad.
func registerAPIServer(t *testing.T, client *api.Client, port int) {
	t.Helper()
	job := api.NewServiceJob("kube-apiserver", "kube-apiserver", "global", 50)
	job.Namespace = ptr("istio-system")
	job.Datacenters = []string{"*"}
	tg := api.NewTaskGroup("kube-apiserver", 1)
	tg.Networks = []*api.NetworkResource{{ReservedPorts: []api.Port{{Label: "https", Value: port}}}}
	tg.Services = []*api.Service{{Name: "kube-apiserver", PortLabel: "https", Provider: "nomad"}}
	task := api.NewTask("stand-in", "raw_exec")
	task.Config = map[string]any{"command": "/bin/sleep", "args": []string{"3600"}}
	task.Resources = &api.Resources{CPU: ptr(50), MemoryMB: ptr(32)}
	tg.AddTask(task)
	job.AddTaskGroup(tg)
	if _, _, err := client.Jobs().Register(job, nil); err != nil {
		t.Fatalf("registering the stand-in kube-apiserver job: %v", err)
	}
	t.Cleanup(func() {
		_, _, _ = client.Jobs().Deregister("kube-apiserver", true, &api.WriteOptions{Namespace: "istio-system"})
	})
}

func ptr[T any](v T) *T { return &v }
