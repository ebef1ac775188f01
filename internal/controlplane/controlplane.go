// Package controlplane starts the mesh's control plane for a test, as example/control-plane/ runs it on Nomad
// but as plain processes: etcd, kube-apiserver (Istio's config store, nothing else of Kubernetes) with Istio's
// CRDs and the project's RBAC applied, and istiod with a plugged-in CA under a throwaway mesh root. Everything
// listens on loopback (istiod's xDS/CA port on the address asked for), authenticates with client certificates
// (no static tokens), and is stopped when the test ends.
//
// The binaries come from the project's builders, which `make` runs and passes on (BinariesFromEnv).
package controlplane

import (
	"net/netip"
	"os"
	"path/filepath"

	"github.com/istio-sidecar/istio-sidecar/controller/pki"
	"github.com/istio-sidecar/istio-sidecar/internal/testenv"
)

// TB is what the helper needs of a test: *testing.T and *testing.B satisfy it.
type TB interface {
	testenv.TB
	Logf(format string, args ...any)
	Failed() bool
	TempDir() string
}

// Binaries are the control plane's executables and Istio's CRDs.
type Binaries struct {
	Etcd, KubeAPIServer, Kubectl, Istiod string
	CRDs                                 string // crd-all.gen.yaml from the same Istio module as istiod
}

// The variables `make` sets from build/etcd.sh, build/kube-apiserver.sh and build/istiod.sh.
const (
	EnvEtcd          = "ISTIO_SIDECAR_ETCD"
	EnvKubeAPIServer = "ISTIO_SIDECAR_KUBE_APISERVER"
	EnvIstiod        = "ISTIO_SIDECAR_ISTIOD"
)

// BinariesFromEnv reads the binaries' paths from the environment: kubectl sits beside kube-apiserver and the CRDs
// beside istiod, as the builders leave them. A missing one ends the test through testenv.SkipOrFail.
func BinariesFromEnv(t TB) Binaries {
	t.Helper()
	b := Binaries{Etcd: os.Getenv(EnvEtcd), KubeAPIServer: os.Getenv(EnvKubeAPIServer), Istiod: os.Getenv(EnvIstiod)}
	if b.Etcd == "" || b.KubeAPIServer == "" || b.Istiod == "" {
		testenv.SkipOrFail(t, "needs the control plane: set %s, %s and %s (make sets them from build/etcd.sh, "+
			"build/kube-apiserver.sh and build/istiod.sh)", EnvEtcd, EnvKubeAPIServer, EnvIstiod)
	}
	b.Kubectl = filepath.Join(filepath.Dir(b.KubeAPIServer), "kubectl")
	b.CRDs = filepath.Join(filepath.Dir(b.Istiod), "crd-all.gen.yaml")
	for _, p := range []string{b.Etcd, b.KubeAPIServer, b.Kubectl, b.Istiod, b.CRDs} {
		if _, err := os.Stat(p); err != nil {
			testenv.SkipOrFail(t, "control plane: %v", err)
		}
	}
	return b
}

// Options change what Start runs; the zero value is a control plane on loopback.
type Options struct {
	// IstiodIP is where istiod's xDS and CA port listens (default 127.0.0.1). A sidecar in another network
	// namespace needs the address of a link into that namespace (testenv.Netns.LinkToHost).
	IstiodIP netip.Addr
	// DeferIstiod leaves istiod to ControlPlane.StartIstiod, for a test of what a sidecar does before it.
	DeferIstiod bool
	// PKIDir is a directory laid out by controller/pki (a bootstrap's -dir) whose keys and certificates the
	// control plane uses; "" means a throwaway PKI in the control plane's own directory.
	PKIDir string
	// Bare leaves the API server empty (no CRDs, namespace or RBAC) and istiod unstarted, for a test of the
	// bootstrap, which puts them there.
	Bare bool
}

// ControlPlane is a running control plane.
type ControlPlane struct {
	Dir string
	// PKIDir holds the keys and certificates (controller/pki's layout); Dir unless Options.PKIDir says otherwise.
	PKIDir string
	Bin    Binaries
	// APIServer is the API server's URL; its serving certificate is signed by APIServerCA and names 127.0.0.1.
	APIServer, APIServerCA string
	// Kubeconfigs with client certificates: the operator (system:masters), istiod's identity and the controller's
	// (istio-sidecar:istiod and istio-sidecar:controller, bound by example/control-plane/rbac/).
	AdminKubeconfig, IstiodKubeconfig, ControllerKubeconfig string
	// Istiod is istiod's xDS and CA address (TLS); a sidecar verifies IstiodSAN on its certificate (ISTIOD_SAN)
	// and its own identity against RootCert, the mesh root.
	Istiod    netip.AddrPort
	IstiodSAN string
	RootCert  []byte
	// TrustDomain and ClusterID are istiod's; a sidecar's ISTIO_META_CLUSTER_ID must be ClusterID.
	TrustDomain, ClusterID string

	istiodIP netip.Addr
	istiod   *process // set by StartIstiod
}

// Start runs etcd, kube-apiserver and istiod in a fresh directory and waits until each is ready. Cleanup stops
// them in reverse order.
func Start(t TB, bin Binaries, opts Options) *ControlPlane {
	t.Helper()
	if !opts.IstiodIP.IsValid() {
		opts.IstiodIP = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	dir := t.TempDir()
	pkiDir := opts.PKIDir
	if pkiDir == "" {
		pkiDir = dir
	}
	root, err := makePKI(pkiDir)
	if err != nil {
		t.Fatalf("control plane PKI: %v", err)
	}
	cp := &ControlPlane{Dir: dir, PKIDir: pkiDir, Bin: bin, RootCert: root, IstiodSAN: istiodHost,
		TrustDomain: "cluster.local", ClusterID: "nomad", APIServerCA: filepath.Join(pkiDir, pki.APIServerCACert),
		istiodIP: opts.IstiodIP}
	etcd := startEtcd(t, cp)
	cp.startAPIServer(t, etcd)
	cp.writeKubeconfigs(t)
	if opts.Bare {
		return cp
	}
	cp.bootstrap(t)
	// The port is chosen now, so that a sidecar can be pointed at istiod before it runs.
	cp.Istiod = netip.AddrPortFrom(opts.IstiodIP, uint16(freePort(t, opts.IstiodIP.String())))
	if !opts.DeferIstiod {
		cp.StartIstiod(t)
	}
	return cp
}
