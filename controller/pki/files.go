package pki

// The files of the operator's directory, relative to it. The istiod-ca/ files are Istio's cacerts layout
// (ROOT_CA_DIR); every *-key.pem, *.key and the mesh root's key stay with the operator unless a job needs them.
const (
	RootCert = "mesh/root-cert.pem"
	RootKey  = "mesh/root-key.pem" // never leaves the operator's directory

	IstiodCACert    = "istiod-ca/ca-cert.pem"
	IstiodCAKey     = "istiod-ca/ca-key.pem"
	IstiodCertChain = "istiod-ca/cert-chain.pem"
	IstiodRootCert  = "istiod-ca/root-cert.pem"

	EtcdCACert           = "etcd/ca.pem"
	EtcdCAKey            = "etcd/ca-key.pem"
	EtcdServerCert       = "etcd/server.pem"
	EtcdServerKey        = "etcd/server-key.pem"
	EtcdAPIServerCert    = "etcd/apiserver-client.pem"
	EtcdAPIServerKey     = "etcd/apiserver-client-key.pem"
	APIServerCACert      = "apiserver/ca.pem"
	APIServerCAKey       = "apiserver/ca-key.pem"
	APIServerServingCert = "apiserver/serving.pem"
	APIServerServingKey  = "apiserver/serving-key.pem"
	ServiceAccountKey    = "apiserver/sa.key"
	ServiceAccountPub    = "apiserver/sa.pub"

	AdminCert      = "clients/admin.pem"
	AdminKey       = "clients/admin-key.pem"
	IstiodCert     = "clients/istiod.pem"
	IstiodKey      = "clients/istiod-key.pem"
	ControllerCert = "clients/controller.pem"
	ControllerKey  = "clients/controller-key.pem"
)

const (
	saKeyFile = ServiceAccountKey
	saPubFile = ServiceAccountPub
)

// The names the certificates carry, as the jobs in example/control-plane/ and the RBAC in its rbac/ use them.
const (
	APIServerName  = "kube-apiserver.service.nomad"
	AdminUser      = "istio-sidecar-admin"
	AdminGroup     = "system:masters"
	IstiodUser     = "istio-sidecar:istiod"
	ControllerUser = "istio-sidecar:controller"
)
