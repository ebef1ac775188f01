package main

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
	"github.com/istio-sidecar/istio-sidecar/internal/testenv"
)

const (
	exampleFile  = "bridge-mode.nomad.hcl" // in example/
	upstreamFile = "e2e/demo/upstream.nomad.hcl"
	proxyTask    = "istio-proxy"
	clientTask   = "client"
	serverTask   = "server"
	upstreamPort = "8080" // where upstream.nomad.hcl's testapp serves, inside its group's namespace
	callTimeout  = 60 * time.Second
)

// steps are the demo, in order. Each prints its own heading and leaves what later steps need on the demo; a new
// step (a control plane job, an identity) goes in here.
var steps = []func(*demo){
	(*demo).preflight,
	(*demo).showBinaries,
	(*demo).startAgent,
	(*demo).startControlPlane,
	(*demo).runUpstream,
	(*demo).runMeshed,
	(*demo).showIdentity,
	(*demo).showWhatHappened,
	(*demo).showTaskEvents,
	(*demo).showRules,
	(*demo).runByName,
	(*demo).showByName,
	(*demo).showEndpoints,
	(*demo).showIdentities,
}

// demo is what the steps share.
type demo struct {
	t     *run
	ports harness.Ports
	bins  binaries
	agent *harness.Agent
	cp    controlPlane

	meshJob   string          // the example's job ID, from its jobspec
	meshGroup *string         // its group's name
	upstream  *api.Allocation // the upstream service's allocation
	target    string          // where the meshed client calls: the upstream's address and port
	meshed    *api.Allocation // the example's allocation
	// The meshed pair: A calls B by its mesh name.
	meshA, meshB *api.Allocation
}

type binaries struct {
	nomad, pilotAgent, template, envoy, plugin, testapp string
	envoyKind                                           string
	standin                                             bool
}

// preflight reads the ports the agent will use and checks that they are free.
func (d *demo) preflight() {
	var err error
	for _, p := range []struct {
		env  string
		def  int
		port *int
	}{{"DEMO_HTTP_PORT", 14646, &d.ports.HTTP}, {"DEMO_RPC_PORT", 14647, &d.ports.RPC}, {"DEMO_SERF_PORT", 14648, &d.ports.Serf}} {
		if *p.port, err = portFromEnv(p.env, p.def); err != nil {
			d.t.Fatalf("%v", err)
		}
	}
	if err := d.ports.Free(); err != nil {
		d.t.Fatalf("%v; set DEMO_HTTP_PORT, DEMO_RPC_PORT, DEMO_SERF_PORT", err)
	}
	// The control plane's jobs have static ports: one control plane per host (a test run's or this).
	if err := harness.ControlPlanePortsFree(); err != nil {
		d.t.Fatalf("%v; is a control plane (make e2e, another demo) running on this host?", err)
	}
}

func portFromEnv(env string, def int) (int, error) {
	v := os.Getenv(env)
	if v == "" {
		return def, nil
	}
	p, err := strconv.Atoi(v)
	if err != nil || p < 1024 || p > 65535 {
		return 0, fmt.Errorf("%s=%q is not a port number in 1024-65535", env, v)
	}
	return p, nil
}

// showBinaries finds what the demo runs (built by `make demo`, cached after the first run) and says what it is.
func (d *demo) showBinaries() {
	step("What runs here (make demo built it; builds are cached after the first run)")
	t := d.t
	b := &d.bins
	b.nomad, b.pilotAgent, b.template = harness.NomadBin(t), harness.PilotAgentBin(t), harness.BootstrapTemplate(t)
	b.plugin, b.envoy = harness.PluginBin(t), harness.EnvoyBin(t)
	version, standin, err := testenv.EnvoyVersion(b.envoy)
	if err != nil {
		t.Fatalf("%v", err)
	}
	b.standin, b.envoyKind = standin, "a real Envoy: "+version
	if standin {
		// The stand-in as it is by default: listeners, clusters and certificates from istiod.
		b.envoy = harness.XDSStandinBin(t)
		b.envoyKind = "the stand-in Envoy (testdoubles/standin-envoy, xDS and SDS from istiod), not a real Envoy"
	}
	d.prepareControlPlane()
	dir, err := os.MkdirTemp("", "istio-sidecar-demo-app-")
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	if b.testapp, err = harness.BuildTestapp(dir); err != nil {
		t.Fatalf("%v", err)
	}
	nomadVersion, _ := exec.Command(b.nomad, "version").Output()
	say("Nomad:       %s (%s)", b.nomad, firstLine(string(nomadVersion)))
	say("pilot-agent: %s", b.pilotAgent)
	say("Envoy:       %s, %s", b.envoy, b.envoyKind)
	say("plugin:      %s; app: %s", b.plugin, b.testapp)
	say("control plane: %s, %s, %s; controller %s", d.cp.bins.Etcd, d.cp.bins.KubeAPIServer,
		d.cp.bins.PilotDiscovery, d.cp.controller)
}

// startAgent starts the demo's Nomad agent with the plugin and waits until the driver is healthy.
func (d *demo) startAgent() {
	step("Starting a Nomad agent (server and client, ACLs on) on 127.0.0.1:%d", d.ports.HTTP)
	t := d.t
	harness.RequireBridgeNetworking(t)
	d.agent = harness.Start(t, harness.Options{
		NomadBin:  d.bins.nomad,
		PluginBin: d.bins.plugin,
		PluginConfig: map[string]any{
			"pilot_agent_path":        d.bins.pilotAgent,
			"envoy_path":              d.bins.envoy,
			"bootstrap_template_path": d.bins.template,
			"discovery_address":       d.cp.discoveryAddress(),
		},
		// The guide's agent (example/control-plane/dev-agent.hcl): ACLs, etcd's host volume, exec's chroot.
		ACL:             true,
		ClientHCL:       harness.ControlPlaneClientHCL(d.cp.etcdData, filepath.Dir(d.cp.bins.Etcd)),
		LogLevel:        "INFO",
		Name:            "demo",
		Ports:           d.ports,
		OwnSession:      true, // a Ctrl-C reaches the demo, which stops the jobs first, not the agent
		CheckHostRules:  true,
		FailureLogLines: 40,
	})
	// Cleanups run last first: on failure the diagnosis, then the heading, then the agent's shutdown and checks.
	t.Cleanup(func() { step("Stopping everything (job stop, agent stop) and checking that nothing is left behind") })
	t.Cleanup(d.diagnose)
	say("agent pid %d, config %s, log %s", d.agent.PID(), d.agent.ConfigPath, d.agent.LogPath)
	d.agent.WaitDriver(t, harness.PluginName, true)
	say("node ready; driver %s detected and healthy", harness.PluginName)
	say("try it yourself meanwhile: %s %s node status -self -verbose", strings.Join(d.agent.CLIEnv(), " "), d.bins.nomad)
}

// runUpstream runs the service the meshed app calls and learns its address.
func (d *demo) runUpstream() {
	step("Running the upstream service (%s): testapp serve in a bridge-mode group of its own", upstreamFile)
	t := d.t
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatalf("%v", err)
	}
	job := d.agent.ParseJobVars(t, filepath.Join(root, upstreamFile), "", harness.Vars{"testapp_path": d.bins.testapp})
	d.agent.Register(t, job)
	d.upstream = d.agent.WaitAlloc(t, *job.ID, api.AllocClientStatusRunning)
	var addr string
	if ns := d.upstream.NetworkStatus; ns != nil {
		addr = ns.Address
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil || !ip.Is4() {
		t.Fatalf("no IPv4 address for allocation %s: %q", d.upstream.ID, addr)
	}
	d.target = ip.String() + ":" + upstreamPort
	say("allocation %s listens on %s inside its own network namespace", d.upstream.ID, d.target)
}

// runMeshed runs the bridge-mode example, whose client calls the upstream through the sidecar, and waits for a
// successful call.
func (d *demo) runMeshed() {
	step("Running the example (example/%s): a meshed group whose client calls %s", exampleFile, d.target)
	t := d.t
	job := d.agent.ParseJobVars(t, harness.ExampleFile(t, exampleFile), "", harness.Vars{
		"testapp_path":   d.bins.testapp,
		"call_target":    d.target,
		"drain_duration": "1s",
	})
	d.meshJob, d.meshGroup = *job.ID, job.TaskGroups[0].Name
	d.agent.Register(t, job)
	d.meshed = d.agent.WaitAlloc(t, *job.ID, api.AllocClientStatusRunning)
	for _, task := range []string{proxyTask, serverTask, clientTask} {
		d.agent.WaitTaskState(t, d.meshed.ID, task, harness.TaskStateRunning)
	}
	want := "call " + d.target + " ok"
	d.agent.Wait(t, callTimeout, "a successful call in the client's log", func() (bool, string) {
		out := d.agent.TaskLogs(t, d.meshed.ID, clientTask, "stdout")
		return strings.Contains(out, want), lastLine(out)
	})
	say("allocation %s runs: %s (prestart sidecar), %s, %s", d.meshed.ID, proxyTask, serverTask, clientTask)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
