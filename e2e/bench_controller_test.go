//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/istio-sidecar/istio-sidecar/controller/registry/apply"
	"github.com/istio-sidecar/istio-sidecar/e2e/harness"
	"github.com/istio-sidecar/istio-sidecar/internal/controlplane"
)

// controllerProc is `istio-sidecar-controller run` as a process of the benchmark's own, pointed at the test's
// API server and agent, so that its memory is its own and a restart is a real one.
type controllerProc struct {
	cmd     *exec.Cmd
	started time.Time
	log     string
	stopped context.CancelFunc
	done    chan struct{}
}

// controllerCheckInterval is the controller's poll of meshed allocations' checks; the benchmark's groups have
// none, so it only bounds how often the controller reads Nomad between events.
const controllerCheckInterval = "1s"

// startControllerProc runs the controller with the controller's kubeconfig, the agent's management token and
// the mesh root. Cleanup stops it and, when the benchmark failed, shows the end of its log.
func startControllerProc(b *testing.B, cp *controlplane.ControlPlane, agent *harness.Agent, n int) *controllerProc {
	b.Helper()
	dir := b.TempDir()
	root := filepath.Join(dir, "root-cert.pem")
	if err := os.WriteFile(root, cp.RootCert, 0o400); err != nil {
		b.Fatal(err)
	}
	c := &controllerProc{log: filepath.Join(dir, fmt.Sprintf("controller-%d.log", n)), done: make(chan struct{})}
	out, err := os.Create(c.log)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.stopped = cancel
	c.cmd = exec.CommandContext(ctx, harness.ControllerBin(b), "run", "-kubeconfig", cp.ControllerKubeconfig,
		"-root-cert", root, "-check-interval", controllerCheckInterval)
	// Stopped as Nomad stops the controller's job: SIGTERM, then SIGKILL if it has not ended by then.
	c.cmd.Cancel = func() error { return c.cmd.Process.Signal(syscall.SIGTERM) }
	c.cmd.WaitDelay = 30 * time.Second
	// The agent's address and token come last: exec keeps the last value of a repeated variable.
	c.cmd.Env = append(os.Environ(), agent.CLIEnv()...)
	c.cmd.Stdout, c.cmd.Stderr = out, out
	c.started = time.Now()
	if err := c.cmd.Start(); err != nil {
		cancel()
		out.Close()
		b.Fatalf("starting the controller: %v", err)
	}
	go func() { _ = c.cmd.Wait(); out.Close(); close(c.done) }()
	b.Cleanup(func() {
		c.stop()
		if b.Failed() {
			data, _ := os.ReadFile(c.log)
			b.Logf("controller log %s (end):\n%s", c.log, tail(string(data), 4096))
		}
	})
	return c
}

// stop ends the controller and waits until it has.
func (c *controllerProc) stop() {
	c.stopped()
	<-c.done
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// objectWatch follows the objects of one kind in namespace default whose names start with a prefix, through
// the API server's watch (a list every few milliseconds would load the API server it measures), and says when
// their count first satisfied a condition.
type objectWatch struct {
	mu      sync.Mutex
	names   map[string]bool
	waiters []countWaiter
}

type countWaiter struct {
	cond func(int) bool
	at   chan time.Time
}

func watchObjects(b *testing.B, dyn dynamic.Interface, kind, prefix string) *objectWatch {
	b.Helper()
	res := dyn.Resource(apply.Resources[kind]).Namespace("default")
	ctx := b.Context()
	list, err := res.List(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatalf("listing %s: %v", kind, err)
	}
	w := &objectWatch{names: map[string]bool{}}
	for _, o := range list.Items {
		if strings.HasPrefix(o.GetName(), prefix) {
			w.names[o.GetName()] = true
		}
	}
	rw, err := watchtools.NewRetryWatcherWithContext(ctx, list.GetResourceVersion(), &cache.ListWatch{
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return res.Watch(ctx, o) },
	})
	if err != nil {
		b.Fatalf("watching %s: %v", kind, err)
	}
	b.Cleanup(rw.Stop)
	go func() {
		for ev := range rw.ResultChan() {
			w.apply(ev.Type, ev.Object, prefix)
		}
	}()
	return w
}

func (w *objectWatch) apply(typ watch.EventType, obj runtime.Object, prefix string) {
	o, ok := obj.(metav1.Object)
	if !ok || !strings.HasPrefix(o.GetName(), prefix) {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	switch typ {
	case watch.Added, watch.Modified:
		w.names[o.GetName()] = true
	case watch.Deleted:
		delete(w.names, o.GetName())
	}
	w.notify(now)
}

// notify hands the time to every waiter whose condition the count now meets; w.mu is held.
func (w *objectWatch) notify(now time.Time) {
	kept := w.waiters[:0]
	for _, x := range w.waiters {
		if x.cond(len(w.names)) {
			x.at <- now
			continue
		}
		kept = append(kept, x)
	}
	w.waiters = kept
}

// when returns a channel that receives the moment the count first meets cond (now, if it already does).
func (w *objectWatch) when(cond func(int) bool) <-chan time.Time {
	ch := make(chan time.Time, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.waiters = append(w.waiters, countWaiter{cond: cond, at: ch})
	w.notify(time.Now())
	return ch
}

func (w *objectWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.names)
}
