// Command demo is `make demo`: the istio-sidecar driver and its control plane end to end on this machine, as
// root. It runs on the e2e harness (e2e/harness), so it starts, stops and checks its Nomad agent exactly as the
// e2e suite does.
//
// It starts a throwaway Nomad agent with ACLs on (server and client on loopback, ports 14646-14648 unless
// DEMO_HTTP_PORT, DEMO_RPC_PORT, DEMO_SERF_PORT say otherwise, everything under temporary directories); runs the
// control plane as example/control-plane.md does, block by block, as the e2e suite runs it (bootstrap, etcd,
// kube-apiserver, istiod, the controller; their static ports must be free, so not while a control-plane test
// runs); runs e2e/demo/upstream.nomad.hcl and example/bridge-mode.nomad.hcl, whose app calls the upstream
// through the sidecar; shows the identity the sidecar got from istiod (its certificate's SPIFFE ID, issuer and
// expiry, checked against the mesh root), the proof of the call and where to look; runs e2e/jobs/mesh-b.hcl and
// mesh-a.hcl, whose app calls B by its mesh name, and shows the name's address from the DNS proxy, the call routed
// to B's endpoint, B's endpoints as A's proxy received them and both identities; then stops everything and
// checks that no process, network namespace, rule or cgroup is left. It cleans up the same way on failure and
// on Ctrl-C.
//
// The binaries come from the same variables as the e2e suite's (NOMAD_BIN, ISTIO_SIDECAR_BIN,
// ISTIO_SIDECAR_PILOT_AGENT, ISTIO_SIDECAR_ENVOY, ISTIO_SIDECAR_ENVOY_XDS, ISTIO_SIDECAR_CONTROLLER and the
// control plane's ISTIO_SIDECAR_ETCD, ISTIO_SIDECAR_KUBE_APISERVER, ISTIO_SIDECAR_ISTIOD), which `make demo` sets
// after building them.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// errInterrupted is why the demo's context ends on Ctrl-C; the harness's waits report it.
var errInterrupted = errors.New("interrupted")

func main() {
	os.Exit(runDemo())
}

// runDemo runs the steps, then the cleanups, and returns the exit code: 0, 1 on a failure or a leftover, 130 when
// interrupted.
func runDemo() int {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	r := &run{ctx: ctx}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		// A second Ctrl-C ends the demo at once, cleanup or not.
		signal.Reset(os.Interrupt, syscall.SIGTERM)
		fmt.Fprintln(os.Stderr, "\ninterrupted: cleaning up")
		r.fail()
		cancel(errInterrupted)
	}()

	d := &demo{t: r}
	r.do(func() {
		for _, s := range steps {
			if ctx.Err() != nil {
				return
			}
			s(d)
		}
	})
	r.cleanUp()

	switch {
	case r.leftoverCount() > 0:
		fmt.Fprintf(os.Stderr, "\ndemo: %d leftover(s) found and removed (see above)\n", r.leftoverCount())
	case !r.Failed():
		fmt.Println("\nDemo complete: the sidecars got their identities from istiod, the calls went through them (A's to B by name," +
			" to the endpoint istiod gave A), and nothing of the demo is left.")
	}
	switch {
	case errors.Is(context.Cause(ctx), errInterrupted):
		return 130
	case r.Failed():
		return 1
	}
	return 0
}
