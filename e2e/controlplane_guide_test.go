//go:build e2e

package e2e

import (
	"strings"
	"testing"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

// TestGuide_BlocksAreTheOperatorsSteps checks what the control-plane scenario runs of the guide: its settings
// first, every step of the operator's in order, and not the agent start the harness does itself.
func TestGuide_BlocksAreTheOperatorsSteps(t *testing.T) {
	blocks := harness.GuideBlocks(t)
	want := []string{": \"${ETCD:=", "bootstrap -dir", "etcd.nomad.hcl", "istiod.nomad.hcl",
		"controller.nomad.hcl", "bridge-mode.nomad.hcl", "/certs"}
	i := 0
	for _, b := range blocks {
		for i < len(want) && strings.Contains(b.Body, want[i]) {
			i++
		}
		if strings.Contains(b.Body, "nomad agent") {
			t.Errorf("the block at line %d starts an agent: the harness does that", b.Line)
		}
	}
	if i < len(want) {
		t.Errorf("the guide's sh blocks lack %q (or have it out of order)", want[i])
	}
}
