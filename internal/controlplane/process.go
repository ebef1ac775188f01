package controlplane

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// process is one control-plane binary running for a test, its output in <dir>/<name>.log.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // cmd.Wait's, once done is closed
}

// stopTimeout is how long a process gets between SIGTERM and SIGKILL; all three shut down in well under it.
const stopTimeout = 15 * time.Second

// startProcess runs bin with args and env in dir. Cleanup stops it (SIGTERM, then SIGKILL) and, when the test
// failed, logs the end of its output.
func startProcess(t TB, dir, name string, env []string, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	out, err := os.Create(p.log)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir, p.cmd.Env, p.cmd.Stdout, p.cmd.Stderr = dir, env, out, out
	if err := p.cmd.Start(); err != nil {
		_ = out.Close()
		t.Fatalf("starting %s (%s): %v", name, bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		_ = out.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s output (end):\n%s", name, p.tail(4096))
		}
	})
	return p
}

func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// exited says why the process is gone, or nil while it runs.
func (p *process) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %v; output:\n%s", p.name, p.err, p.tail(2048))
	default:
		return nil
	}
}

func (p *process) tail(n int) []byte {
	data, err := os.ReadFile(p.log)
	if err != nil {
		return []byte(err.Error())
	}
	if len(data) > n {
		data = data[len(data)-n:]
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	return data
}

// waitUntil polls cond until it returns nil, failing the test when the timeout passes or p exits first.
func waitUntil(t TB, p *process, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if perr := p.exited(); perr != nil {
			t.Fatalf("waiting for %s: %v", what, perr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %v for %s: %v\n%s output (end):\n%s", timeout, what, err, p.name, p.tail(2048))
		}
		time.Sleep(100 * time.Millisecond) // poll interval, not synchronisation
	}
}
