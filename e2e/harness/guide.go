package harness

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

const (
	// GuideFile is the operator's guide the control-plane scenario and `make demo` run, block by block.
	GuideFile = "example/control-plane.md"
	// guideSkipMarker opens the guide's one block the harness does itself: starting the agent.
	guideSkipMarker = "# e2e: the harness does this"
	// guideBlockTimeout bounds one block: `nomad job run` waits for a healthy deployment, bootstrap -wait 5m
	// for the API server.
	guideBlockTimeout = 7 * time.Minute
)

// GuideBlock is one fenced ```sh block of the guide, with the line it starts on, for the failure message.
type GuideBlock struct {
	Line int
	Body string
}

// GuideBlocks reads the guide's ```sh blocks in order, without the one the harness does itself.
func GuideBlocks(t T) []GuideBlock {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("%v", err)
	}
	f, err := os.Open(filepath.Join(root, GuideFile))
	if err != nil {
		t.Fatalf("%v", err)
	}
	defer f.Close()
	var blocks []GuideBlock
	var cur *GuideBlock
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```sh":
			cur = &GuideBlock{Line: n + 1}
		case cur != nil && strings.TrimSpace(line) == "```":
			if !strings.HasPrefix(cur.Body, guideSkipMarker) {
				blocks = append(blocks, *cur)
			}
			cur = nil
		case cur != nil:
			cur.Body += line + "\n"
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%v", err)
	}
	if cur != nil {
		t.Fatalf("%s: the block at line %d is never closed", GuideFile, cur.Line)
	}
	if len(blocks) < 5 {
		t.Fatalf("%s: %d runnable sh blocks, want the settings, bootstrap, etcd and the API server, istiod and the "+
			"controller, the meshed job and its identity", GuideFile, len(blocks))
	}
	return blocks
}

// RunGuideBlock runs one block as the operator would, from the repository root, in bash with errexit, after the
// guide's settings block, and returns its output. env are the values of those settings and the agent's address
// and management token (GuideEnv).
func RunGuideBlock(t T, settings, b GuideBlock, env []string) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("%v", err)
	}
	// Not t.Context(): a cleanup runs blocks too, after the test's context is done.
	ctx, cancel := context.WithTimeout(context.Background(), guideBlockTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", settings.Body+"set -x\n"+b.Body)
	cmd.Dir = root
	cmd.Env = env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("%s:%d (%s):\n%s", GuideFile, b.Line, time.Since(start).Round(time.Second), out)
	if err != nil {
		t.Fatalf("%s: the block at line %d failed: %v", GuideFile, b.Line, err)
	}
	return string(out)
}

// GuideEnv is the environment the guide's blocks run in: the caller's, without NOMAD_* (a user's agent must not
// receive these commands), then this agent's address and token, the nomad CLI on PATH, and the guide's settings.
func GuideEnv(agent *Agent, settings map[string]string) []string {
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
