package controlplane

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// kubeconfigTmpl is a kubeconfig with one cluster and one client-certificate user; the paths are absolute.
const kubeconfigTmpl = `apiVersion: v1
kind: Config
clusters:
- name: mesh
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: %s
  user:
    client-certificate: %s
    client-key: %s
contexts:
- name: mesh
  context: {cluster: mesh, user: %s}
current-context: mesh
`

func (cp *ControlPlane) writeKubeconfigs(t TB) {
	t.Helper()
	write := func(user, client string) string {
		path := filepath.Join(cp.Dir, client+".kubeconfig")
		cert, key := filepath.Join(cp.PKIDir, "clients", client+".pem"), filepath.Join(cp.PKIDir, "clients", client+"-key.pem")
		doc := fmt.Sprintf(kubeconfigTmpl, cp.APIServer, cp.APIServerCA, user, cert, key, user)
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatalf("%v", err)
		}
		return path
	}
	cp.AdminKubeconfig = write(adminUser, "admin")
	cp.IstiodKubeconfig = write(istiodUser, "istiod")
	cp.ControllerKubeconfig = write(controllerUser, "controller")
}

// kubectlTimeout bounds one kubectl call; applying all of Istio's CRDs takes about a second.
const kubectlTimeout = 60 * time.Second

// Kubectl runs kubectl as the operator (system:masters) and returns its standard output, failing the test on
// error. stdin, when not empty, is its input (for `apply -f -`).
func (cp *ControlPlane) Kubectl(t TB, stdin string, args ...string) string {
	t.Helper()
	out, err := cp.KubectlAs(cp.AdminKubeconfig, stdin, args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// KubectlAs runs kubectl with the given kubeconfig, for a test that checks what an identity may do.
func (cp *ControlPlane) KubectlAs(kubeconfig, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, cp.Bin.Kubectl, append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// bootstrap does what the control plane's bootstrap does before istiod starts: Istio's CRDs, established;
// the istio-system namespace; the RBAC of istiod and of the controller from example/control-plane/rbac/.
func (cp *ControlPlane) bootstrap(t TB) {
	t.Helper()
	cp.Kubectl(t, "", "apply", "--server-side", "--field-manager=istio-sidecar-bootstrap", "-f", cp.Bin.CRDs)
	cp.Kubectl(t, "", "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
	cp.Kubectl(t, "", "create", "namespace", "istio-system")
	rbac := filepath.Join(repoRoot(t), "example/control-plane/rbac")
	for _, f := range []string{"istiod.yaml", "controller.yaml"} {
		cp.Kubectl(t, "", "apply", "-f", filepath.Join(rbac, f))
	}
}

// repoRoot is the repository this package is compiled from, where example/ lives.
func repoRoot(t TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatalf("locating the repository")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// ServiceAccountToken creates namespace ns (if absent) and service account sa in it, and returns a token for it
// with audience istio-ca, valid for an hour: what a sidecar presents to istiod's CA.
func (cp *ControlPlane) ServiceAccountToken(t TB, ns, sa string) string {
	t.Helper()
	if _, err := cp.KubectlAs(cp.AdminKubeconfig, "", "get", "namespace", ns); err != nil {
		cp.Kubectl(t, "", "create", "namespace", ns)
	}
	cp.Kubectl(t, "", "-n", ns, "create", "serviceaccount", sa)
	return strings.TrimSpace(cp.Kubectl(t, "", "-n", ns, "create", "token", sa, "--audience=istio-ca", "--duration=1h"))
}

// Apply applies YAML as the operator, as `kubectl apply -f -` would.
func (cp *ControlPlane) Apply(t TB, yaml string) {
	t.Helper()
	cp.Kubectl(t, yaml, "apply", "-f", "-")
}
