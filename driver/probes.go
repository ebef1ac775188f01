package driver

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/istio-sidecar/istio-sidecar/driver/netfilter"
)

// probes are the host facts the fingerprint reads, injected so that its pure step is tested without root.
type probes struct {
	privileged func() bool
	lookPath   func(string) (string, error)
	// executable returns a stamp that changes when the file does, or why it cannot be run.
	executable func(path string) (string, error)
	readable   func(path string) error
	run        func(path string, args ...string) ([]byte, error)
}

const probeTimeout = 10 * time.Second

func hostProbes() probes {
	return probes{
		privileged: func() bool { return os.Geteuid() == 0 || hasCapNetAdmin() },
		lookPath:   netfilter.LookTool,
		executable: func(path string) (string, error) {
			fi, err := os.Stat(path)
			if err != nil {
				return "", fmt.Errorf("not found")
			}
			if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
				return "", fmt.Errorf("not an executable file (mode %s)", fi.Mode())
			}
			return fmt.Sprintf("%d/%d", fi.Size(), fi.ModTime().UnixNano()), nil
		},
		readable: func(path string) error {
			f, err := os.Open(path)
			if err != nil {
				return fmt.Errorf("not readable")
			}
			return f.Close()
		},
		run: func(path string, args ...string) ([]byte, error) {
			ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
			defer cancel()
			// stdout only: pilot-agent logs to stderr before it prints its version.
			out, err := exec.CommandContext(ctx, path, args...).Output()
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", path, strings.Join(args, " "), err)
			}
			return out, nil
		},
	}
}

// capNetAdmin is bit 12 of the effective capability set.
const capNetAdmin = 12

func hasCapNetAdmin() bool {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<capNetAdmin) != 0
		}
	}
	return false
}
