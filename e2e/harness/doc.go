// Package harness runs a real Nomad v1.6.3 agent (server and client on one node) for end-to-end tests of the
// istio-sidecar task driver and for `make demo` (e2e/demo), and gives them small, deadline-bound helpers around it:
// wait for the leader, the node and a driver's health; register jobs from e2e/jobs/*.hcl or example/; wait for
// allocations and tasks; read task events and logs; restart the agent on the same data dir; SIGKILL the plugin;
// run example/control-plane.md's blocks on an agent (guide.go, with the node's setup in controlplane.go) and read
// the workload certificate a proxy holds (certs.go), which the control-plane scenario and the demo share.
// Every agent lives in its own temporary directory with ports chosen free at run time (the demo fixes its own), so
// a demo agent or a parallel run never collides with it. Its caller is a T: a test, a benchmark or the demo.
//
// At cleanup the harness stops every job, waits for the allocations to be terminal, stops the agent (SIGINT, then
// SIGKILL after a grace) and fails the test if any process of that agent (plugin, executor, task), any of its
// allocations' network namespaces or its cgroups, and with Options.CheckHostRules any rule of its allocations in
// the host namespace, is left behind; it logs each check. The agent's log is written to the test log when the test
// fails.
//
// The e2e tests (build tag e2e, in package e2e) find their binaries through these environment variables:
//
//	NOMAD_BIN                  the Nomad agent; default: the path printed by build/nomad.sh (v1.6.3 only)
//	ISTIO_SIDECAR_BIN          the plugin; default: bin/istio-sidecar at the repository root (make build)
//	ISTIO_SIDECAR_PILOT_AGENT  Istio's pilot-agent; default: the path printed by build/pilot-agent.sh
//	ISTIO_SIDECAR_ENVOY        the Envoy pilot-agent starts; default: bin/standin-envoy at the repository root;
//	                           point it at a real Envoy to run the scenarios against one
//	ISTIO_SIDECAR_E2E_KEEP     when set to 1, keep each agent's temporary directory for inspection
//
// Most scenarios need root (Nomad's client, network namespaces, iptables); when it is missing they skip with the
// reason, and under `make test` (ISTIO_SIDECAR_REQUIRE_INTEGRATION) they fail, so a scenario never passes without
// having run.
package harness
