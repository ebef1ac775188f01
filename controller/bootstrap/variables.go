package bootstrap

import "github.com/istio-sidecar/istio-sidecar/controller/pki"

// The Variables of the control plane's jobs (example/control-plane/README.md has the table), each read by its own
// job's templates only.
const (
	EtcdVariable       = "nomad/jobs/etcd"
	APIServerVariable  = "nomad/jobs/kube-apiserver"
	IstiodVariable     = "nomad/jobs/istiod"
	ControllerVariable = "nomad/jobs/istio-sidecar-controller"
)

// variables is what each Variable holds. The mesh root's key is in none of them.
func variables(p *pki.PKI, nomadToken string) map[string]map[string]string {
	f := func(name string) string { return string(p.File(name)) }
	return map[string]map[string]string{
		EtcdVariable: {
			"ca_cert":     f(pki.EtcdCACert),
			"server_cert": f(pki.EtcdServerCert),
			"server_key":  f(pki.EtcdServerKey),
		},
		APIServerVariable: {
			"etcd_ca_cert":     f(pki.EtcdCACert),
			"etcd_client_cert": f(pki.EtcdAPIServerCert),
			"etcd_client_key":  f(pki.EtcdAPIServerKey),
			"serving_cert":     f(pki.APIServerServingCert),
			"serving_key":      f(pki.APIServerServingKey),
			"client_ca_cert":   f(pki.APIServerCACert),
			"sa_signing_key":   f(pki.ServiceAccountKey),
			"sa_public_key":    f(pki.ServiceAccountPub),
		},
		IstiodVariable: {
			"apiserver_ca_cert": f(pki.APIServerCACert),
			"client_cert":       f(pki.IstiodCert),
			"client_key":        f(pki.IstiodKey),
			"ca_cert":           f(pki.IstiodCACert),
			"ca_key":            f(pki.IstiodCAKey),
			"cert_chain":        f(pki.IstiodCertChain),
			"root_cert":         f(pki.IstiodRootCert),
		},
		ControllerVariable: {
			"nomad_token":       nomadToken,
			"apiserver_ca_cert": f(pki.APIServerCACert),
			"client_cert":       f(pki.ControllerCert),
			"client_key":        f(pki.ControllerKey),
			"root_cert":         f(pki.RootCert),
		},
	}
}
