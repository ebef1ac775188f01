package controlplane

import (
	"strings"
	"testing"
	"time"
)

// TestStart checks what the controller's tests will rely on: istiod runs under its own identity (it publishes the
// mesh root into a new namespace), the controller's identity has its least privilege, and nothing is served to an
// anonymous client but health.
func TestStart(t *testing.T) {
	cp := Start(t, BinariesFromEnv(t), Options{})
	cp.Kubectl(t, "", "create", "namespace", "probe")
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := cp.KubectlAs(cp.AdminKubeconfig, "", "-n", "probe", "get", "configmap", "istio-ca-root-cert", "-o", "jsonpath={.data.root-cert\\.pem}")
		if err == nil && strings.Contains(out, "BEGIN CERTIFICATE") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("istiod did not publish the mesh root into namespace probe: %v %q", err, out)
		}
		time.Sleep(200 * time.Millisecond) // poll interval
	}
	if out, err := cp.KubectlAs(cp.ControllerKubeconfig, "", "get", "secrets", "-A"); err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Errorf("the controller listed secrets: %q, %v", out, err)
	}
	if _, err := cp.KubectlAs(cp.ControllerKubeconfig, "", "get", "serviceentries", "-A"); err != nil {
		t.Errorf("the controller cannot list ServiceEntries: %v", err)
	}
	client, err := tlsClient(cp.APIServerCA)
	if err != nil {
		t.Fatal(err)
	}
	if err := getOK(client, cp.APIServer+"/version", ""); err == nil || !strings.Contains(err.Error(), ": 401") {
		t.Errorf("anonymous /version = %v, want 401", err)
	}
	if tok := cp.ServiceAccountToken(t, "probe", "web"); strings.Count(tok, ".") != 2 {
		t.Errorf("token %q is no JWT", tok)
	}
}
