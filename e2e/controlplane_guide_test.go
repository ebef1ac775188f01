//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
)

const (
	// guideFile is the operator's guide the control-plane scenario runs, block by block.
	guideFile = "example/control-plane.md"
	// guideSkipMarker opens the guide's one block the harness does itself: starting the agent.
	guideSkipMarker = "# e2e: the harness does this"
	// guideBlockTimeout bounds one block: `nomad job run` waits for a healthy deployment, bootstrap -wait 5m
	// for the API server.
	guideBlockTimeout = 7 * time.Minute
)

// guideBlock is one fenced ```sh block of the guide, with the line it starts on, for the failure message.
type guideBlock struct {
	line int
	body string
}

// guideBlocks reads the guide's ```sh blocks in order, without the one the harness does itself.
func guideBlocks(t testing.TB) []guideBlock {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(root, guideFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []guideBlock
	var cur *guideBlock
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```sh":
			cur = &guideBlock{line: n + 1}
		case cur != nil && strings.TrimSpace(line) == "```":
			if !strings.HasPrefix(cur.body, guideSkipMarker) {
				blocks = append(blocks, *cur)
			}
			cur = nil
		case cur != nil:
			cur.body += line + "\n"
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s: the block at line %d is never closed", guideFile, cur.line)
	}
	if len(blocks) < 5 {
		t.Fatalf("%s: %d runnable sh blocks, want the settings, bootstrap, etcd and the API server, istiod and the "+
			"controller, the meshed job and its identity", guideFile, len(blocks))
	}
	return blocks
}

// runGuideBlock runs one block as the operator would, from the repository root, in bash with errexit, after the
// guide's settings block, and returns its output. env are the values of those settings and the agent's address
// and management token.
func runGuideBlock(t testing.TB, settings, b guideBlock, env []string) string {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), guideBlockTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", settings.body+"set -x\n"+b.body)
	cmd.Dir = root
	cmd.Env = env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("%s:%d (%s):\n%s", guideFile, b.line, time.Since(start).Round(time.Second), out)
	if err != nil {
		t.Fatalf("%s: the block at line %d failed: %v", guideFile, b.line, err)
	}
	return string(out)
}

// guideEnv is the environment the guide's blocks run in: the test's, without NOMAD_* (a user's agent must not
// receive these commands), then this agent's address and token, the nomad CLI on PATH, and the guide's settings.
func guideEnv(agent *harness.Agent, settings map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NOMAD_") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	env = append(env, agent.CLIEnv()...)
	env = append(env, "PATH="+filepath.Dir(agent.NomadCLI())+":"+os.Getenv("PATH"))
	for k, v := range settings {
		env = append(env, fmt.Sprintf("%s=%s", k, v))
	}
	return env
}

// TestGuide_BlocksAreTheOperatorsSteps checks what the control-plane scenario runs of the guide: its settings
// first, every step of the operator's in order, and not the agent start the harness does itself.
func TestGuide_BlocksAreTheOperatorsSteps(t *testing.T) {
	blocks := guideBlocks(t)
	want := []string{": \"${ETCD:=", "bootstrap -dir", "etcd.nomad.hcl", "istiod.nomad.hcl",
		"controller.nomad.hcl", "bridge-mode.nomad.hcl", "/certs"}
	i := 0
	for _, b := range blocks {
		for i < len(want) && strings.Contains(b.body, want[i]) {
			i++
		}
		if strings.Contains(b.body, "nomad agent") {
			t.Errorf("the block at line %d starts an agent: the harness does that", b.line)
		}
	}
	if i < len(want) {
		t.Errorf("the guide's sh blocks lack %q (or have it out of order)", want[i])
	}
}
