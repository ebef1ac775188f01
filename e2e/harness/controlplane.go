package harness

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// ControlPlaneStaticPorts are the host ports example/control-plane/'s jobs reserve: etcd's client, peer and
// metrics ports, the API server's, istiod's xDS and CA, HTTP (/ready) and monitoring ports. One control plane
// per host: a test run and `make demo` cannot run theirs at once.
var ControlPlaneStaticPorts = []int{2379, 2380, 2381, 6443, 15012, 8080, 15014}

// ControlPlanePortsFree returns an error naming each of those ports something listens on already.
func ControlPlanePortsFree() error {
	var errs []error
	for _, p := range ControlPlaneStaticPorts {
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			errs = append(errs, fmt.Errorf("control-plane port %d is in use: %w", p, err))
			continue
		}
		l.Close()
	}
	return errors.Join(errs...)
}

// DefaultRouteIP is the address of the default route's interface, which Nomad's client fingerprints and
// advertises services on. A UDP "connection" sends nothing; it only picks the route.
func DefaultRouteIP() (string, error) {
	c, err := net.Dial("udp4", "203.0.113.1:9")
	if err != nil {
		return "", fmt.Errorf("no IPv4 default route for the control plane's address: %w", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String(), nil
}

// EtcdDataDir makes etcd's host volume under parent: owned by the user etcd runs as (nobody), private to it;
// parent becomes 0755 so that nobody reaches it.
func EtcdDataDir(parent string) (string, error) {
	dir := filepath.Join(parent, "etcd")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", err
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		return "", err
	}
	return dir, os.Chmod(parent, 0o755)
}

// ControlPlaneClientHCL is the client configuration the guide's agent has (dev-agent.hcl): etcd's host volume,
// and exec's chroot with the build cache (cacheDir) inside it, where etcd's binary is.
func ControlPlaneClientHCL(etcdData, cacheDir string) string {
	return fmt.Sprintf(`host_volume "etcd-data" {
  path      = %q
  read_only = false
}
chroot_env {
  "/bin"            = "/bin"
  "/etc"            = "/etc"
  "/lib"            = "/lib"
  "/lib64"          = "/lib64"
  "/run/resolvconf" = "/run/resolvconf"
  "/sbin"           = "/sbin"
  "/usr"            = "/usr"
  %q = %q
}
`, etcdData, cacheDir, cacheDir)
}
