package proxy

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Paths inside pilot-agent's working directory. pilot-agent resolves these relative to its cwd, which the
// executor sets to the task directory; laying them out there keeps every allocation's proxy state apart and
// lets Nomad's GC remove it with the allocation.
const (
	RootCertPath   = "var/run/secrets/istio/root-cert.pem"
	TokenPath      = "var/run/secrets/tokens/istio-token"
	ConfigDir      = "etc/istio/proxy"
	MeshConfigPath = "etc/istio/config/mesh"
)

// proxyWritable are the directories pilot-agent or Envoy write into (bootstrap, SDS sockets, workload certs)
// as the unprivileged proxy user.
var proxyWritable = []string{
	ConfigDir,
	"var/run/secrets",
	"var/run/secrets/istio",
	"var/run/secrets/tokens",
	"var/run/secrets/workload-spiffe-uds",
	"var/run/secrets/workload-spiffe-credentials",
	"var/run/secrets/credential-uds",
	"var/lib/istio/data",
	"etc/certs",
}

// Layout describes pilot-agent's working tree for one task.
type Layout struct {
	Dir      string // the task directory, pilot-agent's cwd
	UID, GID int    // the proxy user
	RootCert []byte // copied: it only changes with a new mesh CA, and a copy cannot be swapped under the proxy
	// TokenSource is the token's path relative to Dir (typically secrets/istio-token, written by a template).
	// It is linked, not copied, so that a template re-render rotates the token the agent reads. Empty: none.
	TokenSource string
}

// Prepare creates the tree. It is idempotent, so a restarted task re-lays the same tree.
func (l Layout) Prepare() error {
	for _, d := range proxyWritable {
		p := filepath.Join(l.Dir, d)
		if err := os.MkdirAll(p, 0o750); err != nil {
			return fmt.Errorf("creating %s: %w", p, err)
		}
		if err := os.Chown(p, l.UID, l.GID); err != nil {
			return fmt.Errorf("handing %s to the proxy user: %w", p, err)
		}
	}
	if err := writeOwned(filepath.Join(l.Dir, RootCertPath), l.RootCert, l.UID, l.GID); err != nil {
		return err
	}
	if l.TokenSource == "" {
		return nil
	}
	link := filepath.Join(l.Dir, TokenPath)
	target, err := filepath.Rel(filepath.Dir(link), filepath.Join(l.Dir, l.TokenSource))
	if err != nil {
		return fmt.Errorf("linking the token: %w", err)
	}
	if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replacing %s: %w", link, err)
	}
	if err := os.Symlink(target, link); err != nil {
		return fmt.Errorf("linking the token: %w", err)
	}
	return nil
}

// writeOwned writes a file readable by the proxy user only, replacing it atomically.
func writeOwned(path string, data []byte, uid, gid int) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(0o400); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chown(uid, gid); err != nil {
		tmp.Close()
		return fmt.Errorf("handing %s to the proxy user: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}

// ReadInTaskDir reads a file named by a jobspec, relative to the task directory. The job author chooses the
// path but the driver reads it as root, so the path may not leave the task directory, by ".." or by a symlink.
func ReadInTaskDir(taskDir, field, rel string) ([]byte, error) {
	if err := checkRelative(field, rel); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(taskDir)
	if err != nil {
		return nil, fmt.Errorf("%s: opening the task directory: %w", field, err)
	}
	defer root.Close()
	f, err := root.Open(rel)
	if err != nil {
		return nil, fmt.Errorf("%s: %q: %w", field, rel, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: reading %q: %w", field, rel, err)
	}
	return data, nil
}

// RestrictInTaskDir makes a jobspec-named file inside the task directory readable by the proxy user only.
func RestrictInTaskDir(taskDir, field, rel string, uid, gid int) error {
	if err := checkRelative(field, rel); err != nil {
		return err
	}
	root, err := os.OpenRoot(taskDir)
	if err != nil {
		return fmt.Errorf("%s: opening the task directory: %w", field, err)
	}
	defer root.Close()
	f, err := root.Open(rel)
	if err != nil {
		return fmt.Errorf("%s: %q: %w", field, rel, err)
	}
	defer f.Close()
	if err := f.Chown(uid, gid); err != nil {
		return fmt.Errorf("%s: handing %q to the proxy user: %w", field, rel, err)
	}
	if err := f.Chmod(0o400); err != nil {
		return fmt.Errorf("%s: restricting %q: %w", field, rel, err)
	}
	return nil
}

func checkRelative(field, rel string) error {
	clean := filepath.Clean(rel)
	if rel == "" || filepath.IsAbs(rel) || clean == ".." || strings.HasPrefix(clean, "../") {
		return fmt.Errorf("%s: %q must be a path inside the task directory, such as secrets/root-cert.pem", field, rel)
	}
	return nil
}
