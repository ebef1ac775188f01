package controlplane

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/istio-sidecar/istio-sidecar/controller/pki"
)

// readyTimeout bounds each component's start; the notes measured 0.5 s (etcd), 3 s (API server), 2 s (istiod).
const readyTimeout = 60 * time.Second

// freePort asks the kernel for a port free on ip now. Another process could take it before the component
// binds it; the root tests run one at a time, and a lost race fails loudly at bind.
func freePort(t TB, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("choosing a port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startEtcd runs a one-member etcd with TLS and client certificates, and returns its client URL.
func startEtcd(t TB, cp *ControlPlane) string {
	t.Helper()
	client := fmt.Sprintf("https://127.0.0.1:%d", freePort(t, "127.0.0.1"))
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t, "127.0.0.1"))
	metrics := fmt.Sprintf("http://127.0.0.1:%d", freePort(t, "127.0.0.1"))
	d, k := cp.Dir, cp.PKIDir
	p := startProcess(t, d, "etcd", []string{"PATH=" + os.Getenv("PATH")}, cp.Bin.Etcd,
		"--name=test", "--data-dir="+filepath.Join(d, "etcd-data"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=test="+peer, "--initial-cluster-state=new", "--listen-metrics-urls="+metrics,
		"--cert-file="+filepath.Join(k, pki.EtcdServerCert), "--key-file="+filepath.Join(k, pki.EtcdServerKey),
		"--client-cert-auth", "--trusted-ca-file="+filepath.Join(k, pki.EtcdCACert))
	waitUntil(t, p, readyTimeout, "etcd /health", func() error {
		return getOK(http.DefaultClient, metrics+"/health", `"health":"true"`)
	})
	return client
}

// authnConfig lets anonymous requests reach the health paths only, as the kube-apiserver job does.
const authnConfig = `apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
anonymous:
  enabled: true
  conditions: [{path: /livez}, {path: /readyz}, {path: /healthz}]
`

func (cp *ControlPlane) startAPIServer(t TB, etcd string) {
	t.Helper()
	d := cp.Dir
	authn := filepath.Join(d, "authn.yaml")
	if err := os.WriteFile(authn, []byte(authnConfig), 0o600); err != nil {
		t.Fatalf("%v", err)
	}
	port := freePort(t, "127.0.0.1")
	cp.APIServer = fmt.Sprintf("https://127.0.0.1:%d", port)
	f := func(name string) string { return filepath.Join(cp.PKIDir, name) }
	p := startProcess(t, d, "kube-apiserver", []string{"PATH=" + os.Getenv("PATH")}, cp.Bin.KubeAPIServer,
		"--etcd-servers="+etcd, "--etcd-cafile="+f(pki.EtcdCACert),
		"--etcd-certfile="+f(pki.EtcdAPIServerCert), "--etcd-keyfile="+f(pki.EtcdAPIServerKey),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", port),
		"--tls-cert-file="+f(pki.APIServerServingCert), "--tls-private-key-file="+f(pki.APIServerServingKey),
		"--client-ca-file="+f(pki.APIServerCACert), "--authentication-config="+authn, "--authorization-mode=RBAC",
		"--service-account-issuer=https://"+apiServerName, "--service-account-key-file="+f(pki.ServiceAccountPub),
		"--service-account-signing-key-file="+f(pki.ServiceAccountKey), "--api-audiences=https://"+apiServerName+",istio-ca",
		"--service-cluster-ip-range=10.96.0.0/16", "--endpoint-reconciler-type=none",
		"--cert-dir="+filepath.Join(d, "apiserver-generated"))
	client, err := tlsClient(cp.APIServerCA)
	if err != nil {
		t.Fatalf("%v", err)
	}
	waitUntil(t, p, readyTimeout, "kube-apiserver /readyz", func() error { return getOK(client, cp.APIServer+"/readyz", "ok") })
}

// istiodMesh is istiod's MeshConfig: the trust domain its CA signs for.
const istiodMesh = "trustDomain: cluster.local\n"

// StartIstiod runs pilot-discovery as the istiod job does: its own API-server identity, the plugged-in CA,
// plaintext xDS (15010) off, debug endpoints off, everything but the xDS/CA port on loopback.
//
// Start calls it unless told to defer it; it is stopped when the test ends.
func (cp *ControlPlane) StartIstiod(t TB) {
	t.Helper()
	d := cp.Dir
	mesh := filepath.Join(d, "mesh.yaml")
	if err := os.WriteFile(mesh, []byte(istiodMesh), 0o600); err != nil {
		t.Fatalf("%v", err)
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	env := []string{"PATH=" + os.Getenv("PATH"), "POD_NAME=istiod-0", "POD_NAMESPACE=istio-system", "REVISION=default",
		"ROOT_CA_DIR=" + filepath.Join(cp.PKIDir, filepath.Dir(pki.IstiodCACert)), "ISTIOD_CUSTOM_HOST=" + istiodHost, "ENABLE_DEBUG_ON_HTTP=false"}
	p := startProcess(t, d, "istiod", env, cp.Bin.Istiod, "discovery",
		"--kubeconfig="+cp.IstiodKubeconfig, "--meshConfig="+mesh, "--clusterID="+cp.ClusterID,
		"--grpcAddr=", "--secureGRPCAddr="+cp.Istiod.String(), "--httpAddr="+httpAddr,
		fmt.Sprintf("--httpsAddr=127.0.0.1:%d", freePort(t, "127.0.0.1")),
		fmt.Sprintf("--monitoringAddr=127.0.0.1:%d", freePort(t, "127.0.0.1")),
		fmt.Sprintf("--ctrlz_port=%d", freePort(t, "127.0.0.1")))
	waitUntil(t, p, readyTimeout, "istiod /ready", func() error { return getOK(&httpClient, "http://"+httpAddr+"/ready", "") })
	cp.istiod = p
}

// IstiodPID is istiod's process ID, for a benchmark that weighs it; 0 before StartIstiod.
func (cp *ControlPlane) IstiodPID() int {
	if cp.istiod == nil {
		return 0
	}
	return cp.istiod.cmd.Process.Pid
}

var httpClient = http.Client{Timeout: 5 * time.Second}

func tlsClient(caFile string) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", caFile)
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, nil
}

// getOK returns nil when url answers 200 with a body containing want.
func getOK(c *http.Client, url, want string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
		return fmt.Errorf("GET %s: %d %.200s", url, resp.StatusCode, body)
	}
	return nil
}
