package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

// diagnoseLines is how much of a failed proxy's stderr the diagnosis shows.
const diagnoseLines = 15

// showWhatHappened shows the proof: the app's call, the proxy's record of it with the original destination the
// rules preserved, and the upstream's record of its arrival.
func (d *demo) showWhatHappened() {
	step("What happened")
	t, id := d.t, d.meshed.ID
	client := lines(d.agent.TaskLogs(t, id, clientTask, "stdout"))
	say("The app (task %s) called %s; its first lines (nomad alloc logs %s %s):", clientTask, d.target, id, clientTask)
	indent(client[:min(3, len(client))])

	if d.bins.standin {
		line, ok := find(d.agent.TaskLogs(t, id, proxyTask, "stderr"), `"original_dst":"`+d.target+`"`)
		if !ok {
			t.Fatalf("the proxy logged no connection to %s: the call did not go through the sidecar", d.target)
		}
		say("The call went through the sidecar: iptables sent the app's connection to the proxy's outbound listener")
		say("(15001), which read the original destination and forwarded it. The proxy's connection log")
		say("(nomad alloc logs -stderr %s %s):", id, proxyTask)
		indent([]string{line})
	} else {
		say("With a real Envoy there is no stand-in connection log; the REDIRECT counters below show the capture.")
	}
	say("The upstream saw it arrive (nomad alloc logs %s %s):", d.upstream.ID, serverTask)
	if line, ok := find(d.agent.TaskLogs(t, d.upstream.ID, serverTask, "stdout"), "GET /"); ok {
		indent([]string{line})
	}
}

// showTaskEvents shows the driver's task events, as `nomad alloc status` lists them.
func (d *demo) showTaskEvents() {
	step("Where to look: the %s task's events (nomad alloc status %s)", proxyTask, d.meshed.ID)
	indent(eventLines(d.agent.TaskEventsRaw(d.t, d.meshed.ID, proxyTask)))
}

// showRules shows the interception rules in the group's namespace and how many connections they redirected.
func (d *demo) showRules() {
	id := d.meshed.ID
	step("Where to look: the rules in the group's namespace (ip netns exec %s iptables-save | grep ISTIO)", id)
	t, ns := d.t, harness.NetnsPath(id)
	all, err := harness.InNetns(ns, "iptables-save")
	if err != nil {
		t.Fatalf("%v", err)
	}
	indent(matching(all, "ISTIO"))
	say("Connections the outbound capture redirected so far (nat sees the first packet of each; [packets:bytes]):")
	nat, err := harness.InNetns(ns, "iptables-save", "-c", "-t", "nat")
	if err != nil {
		t.Fatalf("%v", err)
	}
	indent(matching(nat, "-A ISTIO_REDIRECT"))
	say("Proxy: %s", d.bins.envoyKind)
}

// diagnose shows, after a failure, the meshed allocations' proxy events and the proxy's last words. It reads the
// log from the alloc dir: Nomad serves no logs of a task that never reached "started".
func (d *demo) diagnose() {
	if !d.t.Failed() || d.meshJob == "" {
		return
	}
	stubs, _, err := d.agent.Client.Jobs().Allocations(d.meshJob, true, nil)
	if err != nil {
		return // the agent is gone: nothing more to ask it
	}
	for _, s := range stubs {
		al, _, err := d.agent.Client.Allocations().Info(s.ID, nil)
		if err != nil || al.TaskStates[proxyTask] == nil {
			continue
		}
		fmt.Fprintf(os.Stderr, "\nAllocation %s, task %s (nomad alloc status %s):\n", s.ID, proxyTask, s.ID)
		fmt.Fprint(os.Stderr, indentLines(strings.Join(eventLines(al.TaskStates[proxyTask].Events), "\n"), "  "))
		path := filepath.Join(d.agent.AllocDir(s.ID), "alloc", "logs", proxyTask+".stderr.0")
		data, _ := os.ReadFile(path)
		l := lines(string(data))
		fmt.Fprintf(os.Stderr, "Its stderr, last lines (%s):\n", path)
		fmt.Fprint(os.Stderr, indentLines(strings.Join(l[max(0, len(l)-diagnoseLines):], "\n"), "  "))
	}
}

// eventLines renders task events as `nomad alloc status` does: time, type, description.
func eventLines(events []*api.TaskEvent) []string {
	out := make([]string, 0, len(events))
	for _, e := range events {
		when := time.Unix(0, e.Time).Format(time.RFC3339)
		out = append(out, fmt.Sprintf("%-25s  %-18s  %s", when, e.Type, harness.EventMessage(e)))
	}
	return out
}

func lines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// find returns the first line of s that contains sub.
func find(s, sub string) (string, bool) {
	for _, l := range lines(s) {
		if strings.Contains(l, sub) {
			return l, true
		}
	}
	return "", false
}

func matching(s, sub string) []string {
	var out []string
	for _, l := range lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}
