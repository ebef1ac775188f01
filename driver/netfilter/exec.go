package netfilter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
)

// ErrNamespaceGone means the namespace path no longer exists (the allocation's network was already torn down).
var ErrNamespaceGone = errors.New("network namespace no longer exists")

// ToolPath is where the iptables and ip tools are looked up: the system's, not whatever PATH the plugin
// inherited (exec.Command would search that one), since they run as root with our payload on stdin.
const ToolPath = "/usr/sbin:/usr/bin:/sbin:/bin"

// ErrToolMissing means an iptables or ip tool is not installed in ToolPath.
var ErrToolMissing = errors.New("not found in " + ToolPath)

// LookTool resolves an iptables or ip tool's name to its path in ToolPath, where the interception runs it
// from; the fingerprint checks the tools the same way.
func LookTool(name string) (string, error) { return lookTool(name) }

func lookTool(name string) (string, error) {
	if strings.Contains(name, "/") {
		return "", fmt.Errorf("tool %q: a name in %s is expected, not a path", name, ToolPath)
	}
	for _, dir := range filepath.SplitList(ToolPath) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q %w", name, ErrToolMissing)
}

// run executes argv (never through a shell) inside the network namespace at nsPath, or in the current one when
// nsPath is empty, feeding stdin; argv[0] is a tool's name, resolved in ToolPath. The child is started from an
// OS thread that has entered the namespace, so it is born there; the Go process itself never leaves its own
// namespace on other threads.
func run(ctx context.Context, nsPath string, stdin string, argv ...string) (string, error) {
	path, err := lookTool(argv[0])
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, path, argv[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = []string{"PATH=" + ToolPath, "LC_ALL=C"}
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

// InNamespace runs f on a thread inside the network namespace at nsPath (or here when nsPath is empty); a
// missing namespace is ErrNamespaceGone.
func InNamespace(nsPath string, f func() error) error { return inNS(nsPath, f) }

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
