package interception

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// hostLock makes host mode exclusive on a host even where the scheduler was bypassed: the rules of host mode
// capture the whole host's traffic, so a second meshed allocation would fight the first over it. The lock is
// a file naming its allocation, under a tmpfs (/run) so that, like the rules, it does not survive a reboot.
// It is held across the sidecar's restarts and released with the allocation's rules.
type hostLock struct{ path string }

func newHostLock(stateDir string) hostLock {
	return hostLock{path: filepath.Join(stateDir, "host-mode.lock")}
}

// acquire takes the lock for allocID; holding it already (a sidecar restart) is not an error.
func (l hostLock) acquire(allocID string) error {
	if err := os.MkdirAll(filepath.Dir(l.path), 0o700); err != nil {
		return fmt.Errorf("host lock: %w", err)
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, werr := f.WriteString(allocID + "\n")
		cerr := f.Close()
		if werr != nil || cerr != nil {
			_ = os.Remove(l.path)
			return fmt.Errorf("host lock: writing %s: %w", l.path, errors.Join(werr, cerr))
		}
		return nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("host lock: %w", err)
	}
	owner, err := l.owner()
	if err != nil {
		return err
	}
	if owner == allocID {
		return nil
	}
	return fmt.Errorf("host network mode: allocation %s already meshes this host (lock %s); "+
		"only one host-mode meshed group can run per host, use bridge networking for more", owner, l.path)
}

// owner returns the allocation holding the lock, or "" when nobody does.
func (l hostLock) owner() (string, error) {
	data, err := os.ReadFile(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("host lock: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}

// release gives the lock back if allocID holds it; someone else's lock is left alone.
func (l hostLock) release(allocID string) error {
	owner, err := l.owner()
	if err != nil || owner != allocID {
		return err
	}
	if err := os.Remove(l.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("host lock: %w", err)
	}
	return nil
}
