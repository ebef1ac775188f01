//go:build e2e

package e2e

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

const (
	// workloadCertTTL is the scenario's plugin workload_cert_ttl: pilot-agent renews at half of it.
	workloadCertTTL = "2m"
	// rotationRefreshBefore, with the controller's 1h tokens, replaces each token about every 15s.
	rotationRefreshBefore = "59m45s"
	rotationWait          = 3 * time.Minute
)

// controllerRun is the guide's controller step, with extra job variables: the rotation proof re-runs the
// controller job as an operator would to shorten its refresh, and restores it afterwards.
func controllerRun(extraVars string) harness.GuideBlock {
	return harness.GuideBlock{Body: `nomad job run -namespace istio-system -var driver="$DRIVER" ` +
		`-var controller_command="$CONTROLLER" -var nomad_addr="$NOMAD_ADDR" ` + extraVars +
		` example/control-plane/controller.nomad.hcl` + "\n"}
}

// testRotation is proof D: with the controller replacing tokens every few seconds and workload certificates of
// workloadCertTTL, the group's Variable and its rendered token change, then the proxy holds a new certificate
// from istiod, and the sidecar task was never restarted (one pilot-agent, the same, still running).
func (cp *controlPlane) testRotation(t *testing.T) {
	alloc := cp.meshedAlloc.ID
	pids := harness.PilotAgentPIDs(cp.agent.TaskEventsRaw(t, alloc, proxyTask))
	if len(pids) != 1 {
		t.Fatalf("want one start of the sidecar before the rotation, found pilot-agent PIDs %v", pids)
	}
	tokenFile := filepath.Join(cp.agent.AllocDir(alloc), proxyTask, "secrets", "istio-token")
	token0 := cp.groupToken(t)
	file0 := readFile(t, tokenFile)
	harness.RunGuideBlock(t, cp.settings, controllerRun("-var refresh_before="+rotationRefreshBefore), cp.env)
	t.Cleanup(func() { harness.RunGuideBlock(t, cp.settings, controllerRun(""), cp.env) })

	cp.agent.Wait(t, rotationWait, "the controller replacing the group's token", func() (bool, string) {
		return cp.groupToken(t) != token0, "the Variable's istio_token is the one before"
	})
	cp.agent.Wait(t, rotationWait, "the new token rendered into secrets/istio-token", func() (bool, string) {
		f := readFile(t, tokenFile)
		return f != file0 && f != "", "the rendered token is the one before"
	})
	tokenChanged := time.Now()
	serial := cp.proxyLeaf(t).SerialNumber
	root := cp.meshRoot(t)
	var leaf *x509.Certificate
	cp.agent.Wait(t, rotationWait, "a renewed workload certificate in the proxy", func() (bool, string) {
		chain, err := harness.ProxyCertChain(alloc)
		if err != nil {
			return false, err.Error()
		}
		if leaf, err = harness.VerifyChain(chain, root); err != nil {
			return false, err.Error()
		}
		return leaf.SerialNumber.Cmp(serial) != 0, fmt.Sprintf("serial %x still", serial)
	})
	t.Logf("certificate renewed %s after the token changed: serial %x → %x, until %s",
		time.Since(tokenChanged).Round(time.Second), serial, leaf.SerialNumber, leaf.NotAfter)
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != guideSPIFFEID {
		t.Errorf("the renewed certificate's URI SANs are %v, want [%s]", leaf.URIs, guideSPIFFEID)
	}
	cp.requireSameSidecar(t, pids[0])
}

// groupToken is the meshed group's token as the controller last wrote it.
func (cp *controlPlane) groupToken(t *testing.T) string {
	v, _, err := cp.agent.Client.Variables().Read("nomad/jobs/"+guideMeshedJob+"/"+exampleGroup, nil)
	if err != nil {
		t.Fatalf("reading the group's Variable: %v", err)
	}
	return v.Items["istio_token"]
}

// proxyLeaf is the workload certificate the proxy holds now.
func (cp *controlPlane) proxyLeaf(t *testing.T) *x509.Certificate {
	chain, err := harness.ProxyCertChain(cp.meshedAlloc.ID)
	if err != nil || len(chain) == 0 {
		t.Fatalf("the proxy's certificate: %v", err)
	}
	return chain[0]
}

// requireSameSidecar checks that the sidecar task never restarted: Nomad counts no restart, the driver reported
// one start, and that pilot-agent still runs.
func (cp *controlPlane) requireSameSidecar(t *testing.T, pid int) {
	al, _, err := cp.agent.Client.Allocations().Info(cp.meshedAlloc.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := al.TaskStates[proxyTask]
	if st == nil || st.Restarts != 0 || st.State != harness.TaskStateRunning {
		t.Errorf("the sidecar task: %+v, want running with 0 restarts", st)
	}
	if pids := harness.PilotAgentPIDs(cp.agent.TaskEventsRaw(t, cp.meshedAlloc.ID, proxyTask)); len(pids) != 1 || pids[0] != pid {
		t.Errorf("pilot-agent starts %v, want only %d", pids, pid)
	}
	if !harness.Alive(pid) {
		t.Errorf("pilot-agent %d no longer runs", pid)
	}
}

func readFile(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}
