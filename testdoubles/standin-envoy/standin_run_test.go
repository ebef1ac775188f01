package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// runningStandin is a stand-in started inside a namespace for one test.
type runningStandin struct {
	cmd *exec.Cmd
	// done receives cmd.Wait's result once; whoever takes it puts it back for the cleanup.
	done   chan error
	stderr *lockedBuffer
}

// startStandin runs the stand-in with the default bootstrap inside ns, with PATH, no control plane and env as its environment and
// wrap (such as setpriv and its arguments) between `ip netns exec ns` and it. Cleanup kills it and, when the test
// failed, logs its stderr.
func startStandin(t *testing.T, ns, standin string, wrap []string, env ...string) *runningStandin {
	t.Helper()
	argv := append(append([]string{"netns", "exec", ns}, wrap...), standin, "-c", "testdata/bootstrap-default.json", "-l", "warning")
	cmd := exec.Command("ip", argv...)
	// No control plane unless the test says otherwise: os/exec keeps the last of duplicate keys.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), envControlPlane + "=" + controlPlaneNone}, env...)
	s := &runningStandin{cmd: cmd, done: make(chan error, 1), stderr: &lockedBuffer{}}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.done
		if t.Failed() {
			t.Logf("stand-in stderr:\n%s", s.stderr.String())
		}
	})
	return s
}

// exitCode waits up to 10 s for the stand-in to exit and returns its exit code: -1 when a signal killed it.
func (s *runningStandin) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		return 0
	case <-time.After(10 * time.Second):
		t.Fatal("stand-in did not exit")
		return -1
	}
}

// lockedBuffer is the stand-in's stderr, written by exec's copier goroutine while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
