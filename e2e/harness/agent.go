package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/nomad/api"
)

const (
	// startTimeout bounds the wait for a leader and a ready node; a healthy single node needs a few seconds.
	startTimeout = 60 * time.Second
	// stopGrace is how long a SIGINTed agent gets to shut down (it stops its plugins) before SIGKILL.
	stopGrace = 30 * time.Second
	// bindAttempts is how often Start picks new ports when another process took one before the agent bound it.
	bindAttempts = 3
)

// Agent is one running Nomad agent (server and client) owned by one test.
type Agent struct {
	// Name is the agent's and node's name, unique per agent.
	Name string
	// Dir is the agent's temporary directory; everything the agent writes is under it.
	Dir        string
	DataDir    string
	PluginDir  string
	ConfigPath string
	// LogPath is the agent's stdout and stderr, appended across restarts.
	LogPath string
	// CgroupParent is the agent's own cgroup parent (client cgroup_parent).
	CgroupParent string
	// Addr is the HTTP API address, such as http://127.0.0.1:38211.
	Addr string
	// Client talks to this agent's HTTP API.
	Client *api.Client
	// NodeID is the client node's ID, known once Start returns.
	NodeID string
	// ManagementToken is the ACL bootstrap token's secret (Options.ACL), "" without ACLs.
	ManagementToken string

	t     T
	opts  Options
	ports Ports
	nomad string
	// hostRules is the host namespace's netfilter state before the agent started (Options.CheckHostRules).
	hostRules Rules

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the current agent process has exited
	exitErr error
	allocs  map[string]bool // every allocation the harness saw: their network namespaces must go away
}

// Start runs a Nomad agent for the test and returns once it has a leader and its node is ready. The agent is
// stopped, and checked for leftovers, in t.Cleanup.
func Start(t T, opts Options) *Agent {
	t.Helper()
	RequireRoot(t)
	if opts.NomadBin == "" {
		opts.NomadBin = NomadBin(t)
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "DEBUG"
	}
	if opts.Name == "" {
		opts.Name = "e2e"
	}
	a := newAgent(t, opts)
	a.ManagementToken = opts.Token
	// Registered before anything can fail, so a half-started agent is still cleaned up.
	t.Cleanup(a.shutdown)
	for _, d := range []string{a.DataDir, a.PluginDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatalf("creating %s: %v", d, err)
		}
	}
	if opts.PluginBin != "" {
		if err := installPlugin(opts.PluginBin, a.PluginDir); err != nil {
			t.Fatalf("%v", err)
		}
	}
	if opts.CheckHostRules {
		a.hostRules = SnapshotRules(t, "")
	}
	a.startListening(t)
	if opts.ACL && opts.Role.server() {
		a.bootstrapACL(t)
	}
	if opts.Role.client() {
		a.WaitNodeReady(t)
	}
	return a
}

// newAgent creates the agent's temporary directory and names everything after it.
func newAgent(t T, opts Options) *Agent {
	t.Helper()
	// A short name: pilot-agent binds unix sockets under the task dir, and a socket path may not exceed 107 bytes
	// (sun_path). /tmp/ise2e-N/data is about as long as a real data_dir such as /opt/nomad/data plus 11 bytes.
	prefix := "is" + opts.Name + "-"
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatalf("creating agent dir: %v", err)
	}
	// MkdirTemp makes it private to root, but the proxy runs as its own user in a task dir below it (as it does
	// under a real data_dir such as /opt/nomad/data, which is world-traversable).
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("opening agent dir to the proxy user: %v", err)
	}
	suffix := strings.TrimPrefix(filepath.Base(dir), prefix)
	return &Agent{
		Name:       opts.Name + "-" + suffix,
		Dir:        dir,
		DataDir:    filepath.Join(dir, "data"),
		PluginDir:  filepath.Join(dir, "plugins"),
		ConfigPath: filepath.Join(dir, "agent.hcl"),
		LogPath:    filepath.Join(dir, "agent.log"),
		// Absolute: Nomad's cgroups v1 cpuset manager rejects a relative parent and disables itself.
		CgroupParent: "/istio-sidecar-" + opts.Name + "-" + suffix,
		t:            t,
		opts:         opts,
		nomad:        opts.NomadBin,
		allocs:       map[string]bool{},
	}
}

// startListening launches the agent and waits for its leader. On ports chosen free it chooses again when the agent
// could not bind (another process took a port after freePorts released it); fixed ports are the caller's to keep
// free.
func (a *Agent) startListening(t T) {
	t.Helper()
	fixed := a.opts.Ports != (Ports{})
	for attempt := 1; ; attempt++ {
		p := a.opts.Ports
		if !fixed {
			var err error
			if p, err = freePorts(); err != nil {
				t.Fatalf("%v", err)
			}
		}
		a.ports = p
		if err := a.launch(); err != nil {
			t.Fatalf("%v", err)
		}
		err := a.waitLeader()
		if err == nil {
			return
		}
		if !fixed && attempt < bindAttempts && a.hasExited() && a.logContains("address already in use") {
			t.Logf("agent could not bind its ports %+v (attempt %d), choosing others", a.ports, attempt)
			continue
		}
		t.Fatalf("%v", err)
	}
}

// launch writes the config for the current ports and starts the agent process.
func (a *Agent) launch() error {
	cfg, err := a.agentConfig()
	if err != nil {
		return err
	}
	if err := os.WriteFile(a.ConfigPath, []byte(cfg), 0o644); err != nil {
		return fmt.Errorf("writing agent config: %w", err)
	}
	logf, err := os.OpenFile(a.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening agent log: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	fmt.Fprintf(logf, "=== harness: starting %s agent -config %s (ports %+v) at %s\n",
		a.nomad, a.ConfigPath, a.ports, time.Now().Format(time.RFC3339Nano))

	argv := []string{a.nomad, "agent", "-config", a.ConfigPath}
	if a.opts.NetnsPath != "" {
		// nsenter rather than `ip netns exec`, which would give the agent a mount namespace of its own.
		argv = append([]string{"nsenter", "--net=" + a.opts.NetnsPath, "--"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = a.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = agentEnv()
	if a.opts.OwnSession {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", a.nomad, err)
	}
	exited := make(chan struct{})
	a.mu.Lock()
	a.cmd, a.exited, a.exitErr = cmd, exited, nil
	a.mu.Unlock()
	go func() {
		err := cmd.Wait()
		a.mu.Lock()
		a.exitErr = fmt.Errorf("agent pid %d exited: %v", cmd.Process.Pid, cmd.ProcessState)
		if err != nil && cmd.ProcessState == nil {
			a.exitErr = fmt.Errorf("waiting for agent pid %d: %w", cmd.Process.Pid, err)
		}
		a.mu.Unlock()
		close(exited)
	}()

	a.Addr = fmt.Sprintf("http://%s:%d", a.opts.bindAddr(), a.ports.HTTP)
	// An explicit config, not api.DefaultConfig: a NOMAD_ADDR or NOMAD_TOKEN in the user's shell (a `make demo`
	// agent) must not redirect the test.
	client, err := api.NewClient(&api.Config{Address: a.Addr, TLSConfig: &api.TLSConfig{}})
	if err != nil {
		return fmt.Errorf("API client for %s: %w", a.Addr, err)
	}
	if a.ManagementToken != "" {
		client.SetSecretID(a.ManagementToken)
	}
	a.Client = client
	return nil
}

// agentEnv is the test's environment without NOMAD_* variables, which would otherwise leak a user's settings for
// another agent into this one and, through the client's environment, into tasks.
func agentEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NOMAD_") {
			env = append(env, kv)
		}
	}
	return env
}

// exitedErr returns why the agent process ended, or nil while it runs. Waits use it to stop early.
func (a *Agent) exitedErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.exited == nil {
		return errors.New("agent not started")
	}
	select {
	case <-a.exited:
		return a.exitErr
	default:
		return nil
	}
}

func (a *Agent) hasExited() bool { return a.exitedErr() != nil }

// PID is the current agent process's ID, 0 before it started.
func (a *Agent) PID() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return 0
	}
	return a.cmd.Process.Pid
}

// Restart stops the agent gracefully, as an operator would, and starts it again with the same data dir, ports and
// plugin: tasks keep running meanwhile, and the client recovers them (RecoverTask) on start. It returns once the
// leader and the node are back.
func (a *Agent) Restart(t T) {
	t.Helper()
	if err := a.stop(); err != nil {
		t.Fatalf("%v", err)
	}
	if err := a.launch(); err != nil {
		t.Fatalf("%v", err)
	}
	a.WaitLeader(t)
	if a.opts.Role.client() {
		a.WaitNodeReady(t)
	}
}

// stop sends SIGINT and waits for the agent to exit, sending SIGKILL after stopGrace. A stopped agent leaves its
// tasks running (only -dev agents destroy allocations on shutdown).
func (a *Agent) stop() error {
	a.mu.Lock()
	cmd, exited := a.cmd, a.exited
	a.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-exited:
		return nil
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGINT agent: %w", err)
	}
	timer := time.NewTimer(stopGrace)
	defer timer.Stop()
	select {
	case <-exited:
		return nil
	case <-timer.C:
	}
	a.t.Logf("agent pid %d still running %s after SIGINT: sending SIGKILL", cmd.Process.Pid, stopGrace)
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGKILL agent: %w", err)
	}
	<-exited
	return nil
}

func (a *Agent) logContains(s string) bool {
	data, err := os.ReadFile(a.LogPath)
	return err == nil && strings.Contains(string(data), s)
}
