package controlplane

import (
	"crypto/x509"
	"fmt"
	"net"
)

// The names the control plane's certificates carry, as the jobs in example/control-plane/ use them.
const (
	apiServerName  = "kube-apiserver.service.nomad"
	istiodHost     = "istiod.service.nomad"
	adminUser      = "istio-sidecar-admin"
	istiodUser     = "istio-sidecar:istiod"
	controllerUser = "istio-sidecar:controller"
)

var (
	serverAuth = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	clientAuth = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	loopback   = []net.IP{net.IPv4(127, 0, 0, 1)}
)

// makePKI writes the control plane's certificates under dir, each trust domain with a CA of its own as in
// example/control-plane/: the mesh root (its key never written) and istiod's intermediate under it; the API
// server's CA for its serving and client certificates; etcd's CA, separate because etcd gives any certificate
// of its CA the whole keyspace. It returns the mesh root in PEM.
func makePKI(dir string) ([]byte, error) {
	files := map[string][]byte{}
	root, err := newCA("istio-sidecar test mesh root", nil, 1)
	if err != nil {
		return nil, err
	}
	if err := istiodCA(root, files); err != nil {
		return nil, err
	}
	if err := apiServerPKI(files); err != nil {
		return nil, err
	}
	if err := etcdPKI(files); err != nil {
		return nil, err
	}
	if err := writeFiles(dir, files); err != nil {
		return nil, fmt.Errorf("writing the PKI: %w", err)
	}
	return root.pem, nil
}

// istiodCA is istiod's plugged-in CA (ROOT_CA_DIR): an intermediate that signs the workloads' certificates.
func istiodCA(root *ca, files map[string][]byte) error {
	inter, err := newCA("istiod", root, 0)
	if err != nil {
		return err
	}
	key, err := inter.keyPEM()
	if err != nil {
		return err
	}
	files["istiod-ca/ca-cert.pem"] = inter.pem
	files["istiod-ca/ca-key.pem"] = key
	files["istiod-ca/root-cert.pem"] = root.pem
	files["istiod-ca/cert-chain.pem"] = append(append([]byte{}, inter.pem...), root.pem...)
	return nil
}

func apiServerPKI(files map[string][]byte) error {
	c, err := newCA("kube-apiserver CA", nil, 0)
	if err != nil {
		return err
	}
	files["apiserver/ca.pem"] = c.pem
	leaves := map[string]leafSpec{
		"apiserver/serving":  {cn: apiServerName, dns: []string{apiServerName, "localhost"}, ips: loopback, usage: serverAuth},
		"clients/admin":      {cn: adminUser, org: "system:masters", usage: clientAuth},
		"clients/istiod":     {cn: istiodUser, usage: clientAuth},
		"clients/controller": {cn: controllerUser, usage: clientAuth},
	}
	if err := signAll(c, leaves, files); err != nil {
		return err
	}
	priv, pub, err := serviceAccountKeys()
	if err != nil {
		return err
	}
	files["apiserver/sa.key"], files["apiserver/sa.pub"] = priv, pub
	return nil
}

func etcdPKI(files map[string][]byte) error {
	c, err := newCA("etcd CA", nil, 0)
	if err != nil {
		return err
	}
	files["etcd/ca.pem"] = c.pem
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	return signAll(c, map[string]leafSpec{
		"etcd/server":           {cn: "etcd", dns: []string{"localhost"}, ips: loopback, usage: both},
		"etcd/apiserver-client": {cn: "kube-apiserver", usage: clientAuth},
	}, files)
}

// signAll signs each leaf and files it as <name>.pem and <name>-key.pem.
func signAll(c *ca, leaves map[string]leafSpec, files map[string][]byte) error {
	for name, spec := range leaves {
		l, err := c.sign(spec)
		if err != nil {
			return err
		}
		files[name+".pem"], files[name+"-key.pem"] = l.cert, l.key
	}
	return nil
}
