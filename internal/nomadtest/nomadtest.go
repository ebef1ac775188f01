// Package nomadtest runs a real Nomad server for the controller's tests: one server, no client (the
// controller only reads jobs and writes Variables, so nothing needs to be placed), ACLs on as in production.
package nomadtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/internal/testenv"
)

// Agent is a running Nomad server; Management is a client with its bootstrap (management) token.
type Agent struct {
	Addr       string
	Management *api.Client
}

const serverConfig = `data_dir  = %q
bind_addr = "127.0.0.1"
advertise {
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}
ports {
  http = %d
  rpc  = %d
  serf = %d
}
server {
  enabled          = true
  bootstrap_expect = 1
}
client { enabled = false }
acl { enabled = true }
`

// Start runs `nomad agent` from NOMAD_BIN (make sets it from build/nomad.sh) and bootstraps its ACLs. The agent
// is stopped when the test ends.
func Start(t *testing.T) *Agent {
	t.Helper()
	bin := os.Getenv("NOMAD_BIN")
	if bin == "" {
		testenv.SkipOrFail(t, "needs a Nomad agent: set NOMAD_BIN (make sets it from build/nomad.sh)")
	}
	dir := t.TempDir()
	http := freePort(t)
	conf := filepath.Join(dir, "server.hcl")
	body := fmt.Sprintf(serverConfig, filepath.Join(dir, "data"), http, freePort(t), freePort(t))
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "nomad.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "agent", "-config="+conf)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		log.Close()
		if t.Failed() {
			out, _ := os.ReadFile(log.Name())
			t.Logf("nomad agent log:\n%s", out)
		}
	})
	a := &Agent{Addr: fmt.Sprintf("http://127.0.0.1:%d", http)}
	a.bootstrap(t, done)
	return a
}

// bootstrap waits for a leader and takes the management token.
func (a *Agent) bootstrap(t *testing.T, exited <-chan struct{}) {
	t.Helper()
	anon, err := api.NewClient(&api.Config{Address: a.Addr})
	if err != nil {
		t.Fatal(err)
	}
	var tok *api.ACLToken
	Eventually(t, time.Minute, "the Nomad server's ACL bootstrap", func() error {
		select {
		case <-exited:
			t.Fatalf("the Nomad agent exited")
		default:
		}
		tok, _, err = anon.ACLTokens().Bootstrap(nil)
		return err
	})
	a.Management, err = api.NewClient(&api.Config{Address: a.Addr, SecretID: tok.SecretID})
	if err != nil {
		t.Fatal(err)
	}
}

// Token creates an ACL token with exactly the policy rules given (HCL) and returns its secret.
func (a *Agent) Token(t *testing.T, name, rules string) string {
	t.Helper()
	if _, err := a.Management.ACLPolicies().Upsert(&api.ACLPolicy{Name: name, Rules: rules}, nil); err != nil {
		t.Fatalf("ACL policy %s: %v", name, err)
	}
	tok, _, err := a.Management.ACLTokens().Create(&api.ACLToken{Name: name, Type: "client", Policies: []string{name}}, nil)
	if err != nil {
		t.Fatalf("ACL token %s: %v", name, err)
	}
	return tok.SecretID
}

// Client returns a client whose token has exactly the policy rules given (HCL).
func (a *Agent) Client(t *testing.T, name, rules string) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: a.Addr, SecretID: a.Token(t, name, rules)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Namespace creates a Nomad namespace.
func (a *Agent) Namespace(t *testing.T, name string) {
	t.Helper()
	if _, err := a.Management.Namespaces().Register(&api.Namespace{Name: name}, nil); err != nil {
		t.Fatalf("namespace %s: %v", name, err)
	}
}

// Eventually polls cond until it returns nil, failing the test with its last error after timeout.
func Eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
