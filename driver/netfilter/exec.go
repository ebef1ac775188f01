package netfilter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
)

// ErrNamespaceGone means the namespace path no longer exists (the allocation's network was already torn down).
var ErrNamespaceGone = errors.New("network namespace no longer exists")

// run executes argv (never through a shell) inside the network namespace at nsPath, or in the current one when
// nsPath is empty, feeding stdin. The child is started from an OS thread that has entered the namespace, so it
// is born there; the Go process itself never leaves its own namespace on other threads.
// toolPath is where the iptables and ip tools are looked up: the system's, not whatever the plugin inherited.
const toolPath = "/usr/sbin:/usr/bin:/sbin:/bin"

func run(ctx context.Context, nsPath string, stdin string, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = []string{"PATH=" + toolPath, "LC_ALL=C"}
	if err := startIn(nsPath, cmd); err != nil {
		return "", err
	}
	if err := cmd.Wait(); err != nil {
		return stdout.String(), &ExecError{Argv: argv, Stderr: strings.TrimSpace(stderr.String()), Err: err}
	}
	return stdout.String(), nil
}

func startIn(nsPath string, cmd *exec.Cmd) error {
	return inNS(nsPath, cmd.Start)
}

func openNS(nsPath string) (ns.NetNS, error) {
	if _, err := os.Stat(nsPath); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNamespaceGone, nsPath)
	}
	netns, err := ns.GetNS(nsPath)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", nsPath, err)
	}
	return netns, nil
}

// inNS runs f on a thread inside the namespace (or here when nsPath is empty).
func inNS(nsPath string, f func() error) error {
	if nsPath == "" {
		return f()
	}
	netns, err := openNS(nsPath)
	if err != nil {
		return err
	}
	defer netns.Close()
	return netns.Do(func(ns.NetNS) error { return f() })
}

// ExecError is a failed iptables command with its stderr, which names the missing module or bad line.
type ExecError struct {
	Argv   []string
	Stderr string
	Err    error
}

func (e *ExecError) Error() string {
	return fmt.Sprintf("%s: %v: %s", strings.Join(e.Argv, " "), e.Err, e.Stderr)
}

func (e *ExecError) Unwrap() error { return e.Err }
