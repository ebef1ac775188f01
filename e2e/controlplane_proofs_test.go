//go:build e2e

package e2e

import (
	"crypto/x509"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

const (
	certTimeout  = 2 * time.Minute
	restartWait  = 3 * time.Minute
	missingWait  = 2 * time.Minute
	refusedJobNS = "team-a"
)

// testIdentityFromIstiod is proof A: istiod's Nomad check passes, and the certificate the meshed sidecar's proxy
// holds (the stand-in's SDS secret, as Envoy's config_dump shows it) names the jobspec's identity and chains to
// the mesh root the bootstrap made.
func (cp *controlPlane) testIdentityFromIstiod(t *testing.T) {
	cp.requireIstiodHealthy(t)
	root := cp.meshRoot(t)
	var leaf *x509.Certificate
	cp.agent.Wait(t, certTimeout, "the sidecar's workload certificate from istiod", func() (bool, string) {
		chain, err := harness.ProxyCertChain(cp.meshedAlloc.ID)
		if err != nil {
			return false, err.Error()
		}
		leaf, err = harness.VerifyChain(chain, root)
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	var uris []string
	for _, u := range leaf.URIs {
		uris = append(uris, u.String())
	}
	if len(uris) != 1 || uris[0] != guideSPIFFEID {
		t.Fatalf("the workload certificate's URI SANs are %v, want exactly [%s]", uris, guideSPIFFEID)
	}
	t.Logf("workload certificate %s, serial %x, until %s, chains to the mesh root", uris[0], leaf.SerialNumber, leaf.NotAfter)
	cp.requireDiscoveryFromService(t)
	cp.runIdentityBlock(t)
}

// requireDiscoveryFromService: the address the sidecar's template read from its group's Variable is istiod's
// Nomad service, as the controller's job found it.
func (cp *controlPlane) requireDiscoveryFromService(t *testing.T) {
	regs, _, err := cp.agent.Client.Services().Get(istiodJob, &api.QueryOptions{Namespace: cpNamespace})
	if err != nil || len(regs) == 0 {
		t.Fatalf("istiod's Nomad service: %v %v", regs, err)
	}
	want := fmt.Sprintf("%s:%d", regs[0].Address, regs[0].Port)
	v, _, err := cp.agent.Client.Variables().Read("nomad/jobs/"+guideMeshedJob+"/"+exampleGroup, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Items["discovery_address"]; got != want {
		t.Errorf("the group's Variable says discovery_address %q, istiod's service is at %s", got, want)
	}
}

// requireIstiodHealthy checks that Nomad found istiod healthy: its deployment's allocation passed the /ready check.
func (cp *controlPlane) requireIstiodHealthy(t *testing.T) {
	stubs, _, err := cp.agent.Client.Jobs().Allocations(istiodJob, false, &api.QueryOptions{Namespace: cpNamespace})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stubs {
		if s.ClientStatus == api.AllocClientStatusRunning && s.DeploymentStatus != nil &&
			s.DeploymentStatus.Healthy != nil && *s.DeploymentStatus.Healthy {
			return
		}
	}
	t.Fatalf("no healthy running istiod allocation (its /ready check): %d allocations", len(stubs))
}

// meshRoot is the mesh root certificate as the bootstrap gave it to istiod (its Variable's root_cert).
func (cp *controlPlane) meshRoot(t *testing.T) *x509.Certificate {
	v, _, err := cp.agent.Client.Variables().Read("nomad/jobs/istiod", &api.QueryOptions{Namespace: cpNamespace})
	if err != nil {
		t.Fatalf("reading istiod's Variable: %v", err)
	}
	certs, err := harness.ParsePEMCerts([]byte(v.Items["root_cert"]))
	if err != nil || len(certs) != 1 {
		t.Fatalf("istiod's Variable root_cert: %d certificates, %v", len(certs), err)
	}
	return certs[0]
}

// testRefusedNamespace is proof B: the bridge example registered in a Nomad namespace that may not claim its
// Istio namespace (default) gets no token, and its sidecar's start fails with the controller's reason.
func (cp *controlPlane) testRefusedNamespace(t *testing.T) {
	c := cp.agent.Client
	if _, err := c.Namespaces().Register(&api.Namespace{Name: refusedJobNS}, nil); err != nil {
		t.Fatal(err)
	}
	job := cp.agent.ParseJobVars(t, harness.ExampleFile(t, bridgeExample), "refused-app",
		harness.Vars{"testapp_path": testappBin(t)})
	ns := refusedJobNS
	job.Namespace = &ns
	cp.agent.Register(t, job)
	q := &api.QueryOptions{Namespace: refusedJobNS}
	var allocID string
	cp.agent.Wait(t, certTimeout, "an allocation of refused-app", func() (bool, string) {
		stubs, _, err := c.Jobs().Allocations("refused-app", false, q)
		if err != nil || len(stubs) == 0 {
			return false, fmt.Sprint(err)
		}
		allocID = stubs[0].ID
		return true, ""
	})
	e := cp.agent.WaitTaskEvent(t, allocID, proxyTask, "the start refused with the controller's reason", certTimeout,
		func(e *api.TaskEvent) bool {
			return strings.Contains(harness.EventMessage(e), "the mesh refused this group")
		})
	msg := harness.EventMessage(e)
	t.Logf("sidecar event: %s", msg)
	// The controller's reason names both namespaces; the driver adds the rest.
	for _, want := range []string{`"` + refusedJobNS + `"`, `"default"`} {
		if !strings.Contains(msg[strings.Index(msg, "the mesh refused this group"):], want) {
			t.Errorf("the reason does not name %s", want)
		}
	}
	if st := cp.agent.TaskEventsRaw(t, allocID, proxyTask); hasStarted(st) {
		t.Errorf("the refused sidecar started: %v", harness.FormatEvents(st))
	}
}

func hasStarted(events []*api.TaskEvent) bool {
	return len(harness.PilotAgentPIDs(events)) > 0
}

// testIstiodKilled is proof E: istiod SIGKILLed, Nomad restarts it, the sidecar's proxy gets a new push once
// pilot-agent has reconnected, and the group's interception rules never changed meanwhile.
func (cp *controlPlane) testIstiodKilled(t *testing.T) {
	netns := harness.NetnsPath(cp.meshedAlloc.ID)
	before := harness.SnapshotRules(t, netns)
	updates := proxyUpdates(t, cp.meshedAlloc.ID)
	pids := cp.agent.ProcsMatching(t, "pilot-discovery")
	if len(pids) != 1 {
		t.Fatalf("want one istiod process, found %v", pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cp.agent.Wait(t, restartWait, "istiod restarted by Nomad", func() (bool, string) {
		now := cp.agent.ProcsMatching(t, "pilot-discovery")
		return len(now) == 1 && now[0] != pids[0], fmt.Sprintf("istiod processes %v", now)
	})
	cp.agent.Wait(t, restartWait, "a new xDS push to the proxy after the reconnect", func() (bool, string) {
		n := proxyUpdates(t, cp.meshedAlloc.ID)
		return n > updates, fmt.Sprintf("%d accepted updates (%d before)", n, updates)
	})
	cp.agent.Wait(t, certTimeout, "the sidecar ready", func() (bool, string) {
		_, err := harness.InNetns(netns, "curl", "-sf", "--max-time", "3", "http://127.0.0.1:15020/healthz/ready")
		return err == nil, fmt.Sprint(err)
	})
	if diff := before.Diff(harness.SnapshotRules(t, netns)); len(diff) > 0 {
		t.Errorf("the group's rules changed while istiod was down:\n%s", strings.Join(diff, "\n"))
	}
	if st := cp.agent.TaskEventsRaw(t, cp.meshedAlloc.ID, proxyTask); len(harness.PilotAgentPIDs(st)) != 1 {
		t.Errorf("the sidecar restarted: %v", harness.FormatEvents(st))
	}
}

// testOtherJobCannotReadToken is proof C: with ACLs on, a job's template naming another group's Variable blocks;
// Nomad reports the missing Variable in the task's events, and nothing is rendered.
func (cp *controlPlane) testOtherJobCannotReadToken(t *testing.T) {
	target := "nomad/jobs/" + guideMeshedJob + "/" + exampleGroup
	job, _ := cp.agent.RegisterJob(t, "snoop-token.hcl", map[string]string{"target": target})
	alloc := cp.agent.WaitAlloc(t, *job.ID, api.AllocClientStatusPending)
	want := "Missing: nomad.var.block(" + target + "@default.global)"
	cp.agent.WaitTaskEvent(t, alloc.ID, "snoop", "the template blocked on "+target, missingWait,
		func(e *api.TaskEvent) bool { return strings.Contains(harness.EventMessage(e), want) })
	if al, _, err := cp.agent.Client.Allocations().Info(alloc.ID, nil); err != nil || al.TaskStates["snoop"].State == harness.TaskStateRunning {
		t.Errorf("the snooping task runs (err %v): its template rendered", err)
	}
}

// proxyUpdates is how many CDS and LDS responses the proxy accepted: Envoy's update_success counters, which a
// push after pilot-agent reconnects to istiod increases.
func proxyUpdates(t *testing.T, allocID string) int {
	t.Helper()
	out, err := harness.InNetns(harness.NetnsPath(allocID), "curl", "-sf", "--max-time", "3",
		"http://127.0.0.1:15000/stats?filter=update_success")
	if err != nil {
		return -1
	}
	total := 0
	for _, line := range strings.Split(out, "\n") {
		name, value, ok := strings.Cut(line, ": ")
		if !ok || !(strings.HasPrefix(name, "cluster_manager.cds.") || strings.HasPrefix(name, "listener_manager.lds.")) {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(value))
		if err == nil {
			total += n
		}
	}
	return total
}
