//go:build e2e

package e2e

import (
	"fmt"
	"os/user"
	"strconv"
	"testing"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

// TestBridgeMode_ExecAppIsIntercepted: the app tasks run under Nomad's exec driver (libcontainer: a chroot,
// PID namespace and cgroup of their own, user nobody), which joins the group's network namespace as raw_exec
// does. The client's calls land on its Envoy with the original destination, made from a socket that nobody
// owns (the exec task, not anything of the proxy's), and reach the service.
func TestBridgeMode_ExecAppIsIntercepted(t *testing.T) {
	t.Parallel()
	harness.RequireBridgeNetworking(t)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("looking up the exec driver's default user: %v", err)
	}
	nobodyUID, _ := strconv.Atoi(nobody.Uid)
	app := testappBin(t)
	opts := pluginOptions(t)
	// The task's chroot holds the static test app at the same path, and the user database libcontainer reads
	// to switch to nobody: nothing else.
	opts.ClientHCL = fmt.Sprintf("chroot_env {\n  %q = %q\n  \"/etc/passwd\" = \"/etc/passwd\"\n  \"/etc/group\" = \"/etc/group\"\n}\n", app, app)
	agent := harness.Start(t, opts)
	agent.WaitDriver(t, harness.PluginName, true)
	agent.WaitDriver(t, "exec", true)

	up := listenOnBridge(t)
	vars := bridgeVars(t, up.Addr)
	vars["app_driver"] = "exec"
	alloc := runBridgeJob(t, agent, "exec-app", vars)

	recs := waitConnLog(t, connLogPath(agent, alloc.ID), up.Addr, 0)
	for _, r := range recs {
		if r.SrcUID != nobodyUID {
			t.Errorf("captured connection %s -> %s owned by UID %d, want the exec task's nobody (%d)", r.Src, r.OriginalDst, r.SrcUID, nobodyUID)
		}
		if r.Outcome != "forwarded" {
			t.Errorf("captured connection %s -> %s: %s %s", r.Src, r.OriginalDst, r.Outcome, r.Error)
		}
	}
	pollUntil(t, meshTimeout, "the service to accept the app's calls", func() (bool, string) {
		n := up.accepted.Load()
		return n > 0, fmt.Sprintf("%d accepted", n)
	})
	t.Logf("%d connections of the exec task captured by its Envoy, %d reached %s", len(recs), up.accepted.Load(), up.Addr)
}
