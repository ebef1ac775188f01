package proxy

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Paths inside pilot-agent's working directory. pilot-agent resolves these relative to its cwd, which the
// executor sets to the task directory; laying them out there keeps every allocation's proxy state apart and
// lets Nomad's GC remove it with the allocation.
const (
	RootCertPath   = "var/run/secrets/istio/root-cert.pem"
	TokenPath      = "var/run/secrets/tokens/istio-token"
	ConfigDir      = "etc/istio/proxy"
	MeshConfigPath = "etc/istio/config/mesh"
	// pilot-agent reads these as a pod's downward-API files, and a proxy.istio.io/config annotation there
	// overrides PROXY_CONFIG, binaryPath included: the driver owns them, empty.
	podAnnotationsPath = "etc/istio/pod/annotations"
	podLabelsPath      = "etc/istio/pod/labels"
)

// proxyWritable are the directories pilot-agent or Envoy write into (bootstrap, SDS sockets, workload certs)
// as the unprivileged proxy user. Their parents stay root's.
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

// Prepare creates the tree. It is idempotent, so a restarted task re-lays the same tree. The driver runs as
// root in a directory that the task, the proxy user and the job's templates can write to, so every step goes
// through an os.Root (nothing resolves outside the task dir) and every directory of the tree is checked to be
// a real directory, not a link planted by a previous run of the proxy.
func (l Layout) Prepare() error {
	root, err := os.OpenRoot(l.Dir)
	if err != nil {
		return fmt.Errorf("opening the task directory: %w", err)
	}
	defer root.Close()
	// Nomad leaves a task dir 0777 for tasks that run as nobody. The sidecar's needs no one else writing at its
	// top: anyone who could would rename root's etc/ aside and plant a pod annotation setting binaryPath
	// between now and pilot-agent's start. Templates and secrets/ are Nomad's (root) and keep working.
	if err := ownDir(root, ".", 0, 0, 0o755); err != nil {
		return err
	}
	for _, d := range l.dirs() {
		if err := realDir(root, d.name, d.uid, d.gid, d.mode); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name     string
		data     []byte
		uid, gid int
		mode     os.FileMode
	}{
		{RootCertPath, l.RootCert, l.UID, l.GID, 0o400},
		{podAnnotationsPath, nil, 0, 0, 0o644},
		{podLabelsPath, nil, 0, 0, 0o644},
		{MeshConfigPath, nil, 0, 0, 0o644},
	} {
		if err := replaceFile(root, f.name, f.data, f.uid, f.gid, f.mode); err != nil {
			return err
		}
	}
	return l.linkToken(root)
}

type dirSpec struct {
	name     string
	uid, gid int
	mode     os.FileMode
}

// dirs lists the tree's directories, outermost first: the proxy's own, and root's (0755, so that the proxy
// reaches its directories without root's group) for every parent and for the pod and mesh config files.
func (l Layout) dirs() []dirSpec {
	spec := map[string]dirSpec{}
	for _, d := range append(slices.Clone(proxyWritable), path.Dir(podAnnotationsPath), path.Dir(MeshConfigPath)) {
		for _, p := range append(parents(d), d) {
			if _, ok := spec[p]; !ok {
				spec[p] = dirSpec{name: p, mode: 0o755}
			}
		}
	}
	for _, d := range proxyWritable {
		spec[d] = dirSpec{name: d, uid: l.UID, gid: l.GID, mode: 0o750}
	}
	out := make([]dirSpec, 0, len(spec))
	for _, d := range spec {
		out = append(out, d)
	}
	// Parents before children: fewer separators first, then by name for a stable order.
	slices.SortFunc(out, func(a, b dirSpec) int {
		if c := strings.Count(a.name, "/") - strings.Count(b.name, "/"); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return out
}

func (l Layout) linkToken(root *os.Root) error {
	if err := root.Remove(TokenPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replacing %s: %w", TokenPath, err)
	}
	if l.TokenSource == "" {
		return nil
	}
	target, err := filepath.Rel(filepath.Dir(TokenPath), filepath.Clean(l.TokenSource))
	if err != nil {
		return fmt.Errorf("linking the token: %w", err)
	}
	if err := root.Symlink(target, TokenPath); err != nil {
		return fmt.Errorf("linking the token: %w", err)
	}
	return nil
}

// parents lists a relative path's ancestors, outermost first ("a/b/c" → "a", "a/b").
func parents(p string) []string {
	var out []string
	for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
		out = append([]string{dir}, out...)
	}
	return out
}

// realDir makes name a directory (replacing a link or file found there) with the given owner and mode.
func realDir(root *os.Root, name string, uid, gid int, mode os.FileMode) error {
	if fi, err := root.Lstat(name); err == nil && !fi.IsDir() {
		if err := root.Remove(name); err != nil {
			return fmt.Errorf("replacing %s, which is not a directory: %w", name, err)
		}
	}
	if err := root.Mkdir(name, mode); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating %s: %w", name, err)
	}
	return ownDir(root, name, uid, gid, mode)
}

// ownDir sets a directory's owner and mode through a descriptor opened with O_DIRECTORY|O_NOFOLLOW, so that
// neither a link nor a hard-linked file swapped in after the checks above is what gets chowned.
func ownDir(root *os.Root, name string, uid, gid int, mode os.FileMode) error {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", name, err)
	}
	defer f.Close()
	if err := f.Chown(uid, gid); err != nil {
		return fmt.Errorf("owning %s: %w", name, err)
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("setting the mode of %s: %w", name, err)
	}
	return nil
}

// replaceFile writes a file and renames it into place: readers never see half a file, and a link planted
// at the name is replaced, not followed.
func replaceFile(root *os.Root, name string, data []byte, uid, gid int, mode os.FileMode) error {
	tmp := name + ".tmp"
	_ = root.Remove(tmp)
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	_, werr := f.Write(data)
	cerr := f.Chown(uid, gid)
	merr := f.Chmod(mode)
	if err := errors.Join(werr, cerr, merr, f.Close()); err != nil {
		_ = root.Remove(tmp)
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := root.Rename(tmp, name); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// openJobFile opens a file a jobspec names, relative to the task directory, for the root-run driver: the path
// may not leave the task directory (by ".." or by a symlink), and must be a regular file with a single link,
// so that neither a FIFO (which would block the driver) nor a hard link to a host file passes.
func openJobFile(taskDir, field, rel string) (*os.Root, *os.File, error) {
	clean := filepath.Clean(rel)
	if rel == "" || filepath.IsAbs(rel) || clean == ".." || strings.HasPrefix(clean, "../") {
		return nil, nil, fmt.Errorf("%s: %q must be a path inside the task directory, such as secrets/root-cert.pem", field, rel)
	}
	root, err := os.OpenRoot(taskDir)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: opening the task directory: %w", field, err)
	}
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		root.Close()
		return nil, nil, fmt.Errorf("%s: %q: %w", field, rel, err)
	}
	fi, err := f.Stat()
	if err == nil && (!fi.Mode().IsRegular() || links(fi) != 1) {
		err = fmt.Errorf("not a regular file with a single link")
	}
	if err != nil {
		f.Close()
		root.Close()
		return nil, nil, fmt.Errorf("%s: %q: %w", field, rel, err)
	}
	return root, f, nil
}

func links(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 0
}

// ReadInTaskDir reads a file named by a jobspec, relative to the task directory (see openJobFile).
func ReadInTaskDir(taskDir, field, rel string) ([]byte, error) {
	root, f, err := openJobFile(taskDir, field, rel)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: reading %q: %w", field, rel, err)
	}
	return data, nil
}

// RestrictInTaskDir makes a jobspec-named file inside the task directory readable by the proxy user only.
func RestrictInTaskDir(taskDir, field, rel string, uid, gid int) error {
	root, f, err := openJobFile(taskDir, field, rel)
	if err != nil {
		return err
	}
	defer root.Close()
	defer f.Close()
	if err := f.Chown(uid, gid); err != nil {
		return fmt.Errorf("%s: handing %q to the proxy user: %w", field, rel, err)
	}
	if err := f.Chmod(0o400); err != nil {
		return fmt.Errorf("%s: restricting %q: %w", field, rel, err)
	}
	return nil
}
