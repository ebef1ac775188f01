package main

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

// The meshed pair the e2e suite runs across two nodes (e2e/jobs/mesh-a.hcl, mesh-b.hcl), here on the demo's one:
// A resolves B's mesh name through pilot-agent's DNS proxy and calls it every second.
const (
	meshAJob, meshBJob = "mesh-a", "mesh-b"
	meshBHost          = "mesh-b.default.svc.cluster.local"
	meshBTarget        = meshBHost + ":8080"
	meshBCluster       = "outbound|8080||" + meshBHost
)

// runByName runs B, then A, and waits until A's app has called B by name and been answered.
func (d *demo) runByName() {
	step("Meshed services by name (e2e/jobs/%s.hcl calls e2e/jobs/%s.hcl as %s)", meshAJob, meshBJob, meshBTarget)
	t := d.t
	vars := harness.Vars{"testapp_path": d.bins.testapp, "node": d.agent.Name}
	d.agent.Register(t, d.agent.ParseJobVars(t, meshBJob+".hcl", "", vars))
	vars["call_target"] = meshBTarget
	d.agent.Register(t, d.agent.ParseJobVars(t, meshAJob+".hcl", "", vars))
	d.meshB = d.runningAlloc(meshBJob)
	d.meshA = d.runningAlloc(meshAJob)
	want := "call " + meshBTarget + " ok"
	d.agent.Wait(t, callTimeout, "A's call to B by name answered", func() (bool, string) {
		out := d.agent.TaskLogs(t, d.meshA.ID, clientTask, "stdout")
		return strings.Contains(out, want), lastLine(out)
	})
	say("B is allocation %s, A is %s; the controller made B's allocation an endpoint of %s", d.meshB.ID, d.meshA.ID, meshBHost)
}

// runningAlloc waits for the job's allocation and every one of its tasks to run.
func (d *demo) runningAlloc(job string) *api.Allocation {
	al := d.agent.WaitAlloc(d.t, job, api.AllocClientStatusRunning)
	for _, task := range al.Job.LookupTaskGroup(al.TaskGroup).Tasks {
		d.agent.WaitTaskState(d.t, al.ID, task.Name, harness.TaskStateRunning)
	}
	return al
}

// showByName shows A's call: its app's log, the name's address from the DNS proxy, the proxy's routing of it to
// B's endpoint, and B's app answering.
func (d *demo) showByName() {
	step("A called B by name")
	t, a, b := d.t, d.meshA.ID, d.meshB.ID
	out, err := harness.InNetns(harness.NetnsPath(a), "getent", "ahostsv4", meshBHost)
	if err != nil {
		t.Fatalf("resolving %s in A's namespace: %v", meshBHost, err)
	}
	say("In A's namespace %s resolves, through pilot-agent's DNS proxy (15053), to the address istiod allocated:", meshBHost)
	indent(lines(out)[:1])
	// Its first calls may have failed: until B's sidecar was ready, B's cluster had no endpoint.
	say("A's app (nomad alloc logs %s %s):", a, clientTask)
	indent([]string{"call " + meshBTarget + " ok"}) // runByName waited for this line
	if d.bins.standin {
		line, ok := find(d.agent.TaskLogs(t, a, proxyTask, "stderr"), `"cluster":"`+meshBCluster+`","upstream"`)
		if !ok {
			t.Fatalf("A's proxy logged no connection routed to %s", meshBCluster)
		}
		say("A's proxy took the connection on 15001 and routed it to an endpoint of B's cluster (nomad alloc logs -stderr %s %s):", a, proxyTask)
		indent([]string{line})
	}
	var answered string
	d.agent.Wait(t, callTimeout, "B's app logging A's call", func() (bool, string) {
		line, ok := find(d.agent.TaskLogs(t, b, serverTask, "stdout"), "GET / ")
		answered = line
		return ok, "no GET / in its log yet"
	})
	say("B's app answered it (nomad alloc logs %s %s):", b, serverTask)
	indent([]string{answered})
}

// showEndpoints shows B's endpoints as A's proxy received them from istiod, beside B's Nomad registration.
func (d *demo) showEndpoints() {
	step("B's endpoints as A's proxy received them (ip netns exec %s curl -s '127.0.0.1:15000/config_dump?include_eds')", d.meshA.ID)
	t := d.t
	regs, _, err := d.agent.Client.Services().Get(meshBJob, nil)
	if err != nil {
		t.Fatalf("reading service %s: %v", meshBJob, err)
	}
	for _, r := range regs {
		say("Nomad: service %s of allocation %s at %s", r.ServiceName, r.AllocID, netip.AddrPortFrom(netip.MustParseAddr(r.Address), uint16(r.Port)))
	}
	var eps []harness.Endpoint
	d.agent.Wait(t, callTimeout, "B's endpoint in A's config dump", func() (bool, string) {
		dump, err := harness.FetchConfigDump(d.meshA.ID)
		if err != nil {
			return false, err.Error()
		}
		eps = dump.ClusterEndpoints(meshBCluster)
		return len(eps) > 0, fmt.Sprintf("%d endpoints", len(eps))
	})
	for _, e := range eps {
		say("A's proxy: cluster %s endpoint %s (%s)", meshBCluster, e.Addr, e.Health)
	}
}

// showIdentities shows the workload identities istiod issued A and B, each checked against the mesh root.
func (d *demo) showIdentities() {
	step("A's and B's identities: their proxies' workload certificates, from istiod")
	root := d.meshRoot()
	for _, al := range []*api.Allocation{d.meshA, d.meshB} {
		chain, err := harness.ProxyCertChain(al.ID)
		if err != nil {
			d.t.Fatalf("%s's certificate: %v", al.JobID, err)
		}
		leaf, err := harness.VerifyChain(chain, root)
		if err != nil {
			d.t.Fatalf("%s's certificate: %v", al.JobID, err)
		}
		for _, u := range leaf.URIs {
			say("%s: %s (until %s)", al.JobID, u, leaf.NotAfter.UTC().Format("2006-01-02 15:04:05Z"))
		}
	}
}
