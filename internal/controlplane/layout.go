package controlplane

import (
	"github.com/istio-sidecar/istio-sidecar/controller/pki"
)

// The names the control plane's certificates carry, as the jobs in example/control-plane/ use them.
const (
	apiServerName  = pki.APIServerName
	istiodHost     = "istiod.service.nomad"
	adminUser      = pki.AdminUser
	istiodUser     = pki.IstiodUser
	controllerUser = pki.ControllerUser
)

// makePKI makes the control plane's PKI in dir as the bootstrap does (controller/pki), or takes the one already
// there, and returns the mesh root in PEM.
func makePKI(dir string) ([]byte, error) {
	p, err := pki.Ensure(dir, pki.Options{TrustDomain: "cluster.local"})
	if err != nil {
		return nil, err
	}
	return p.File(pki.RootCert), nil
}
