package pki

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"slices"
	"time"
)

// Lifetimes. A certificate with less than renewBefore left is issued again by the next Ensure; so is every leaf of
// a CA made anew.
const (
	rootValidity  = 10 * 365 * 24 * time.Hour
	interValidity = 5 * 365 * 24 * time.Hour
	leafValidity  = 365 * 24 * time.Hour
	renewBefore   = 30 * 24 * time.Hour
)

// Options say what the certificates name beyond the fixed names.
type Options struct {
	// TrustDomain is the mesh's (istiod's trustDomain); the mesh root and istiod's intermediate carry it as their
	// organization, as Istio's own CA does.
	TrustDomain string
	// APIServerIPs and EtcdIPs are the addresses clients dial (Nomad services have no DNS names); 127.0.0.1 is
	// always included. nil keeps the addresses the existing certificate has, so a run without the flag does not
	// take an address away.
	APIServerIPs, EtcdIPs []net.IP
}

// PKI is the operator's directory once Ensure has made everything in it valid.
type PKI struct {
	Dir string
	// Made lists the certificates and keys this Ensure made or issued again, for the operator to see: a new mesh
	// root means every workload must be given the new root.
	Made  []string
	files map[string][]byte
}

// File returns one of the files (the constants of this package), PEM-encoded.
func (p *PKI) File(name string) []byte { return p.files[name] }

// Ensure loads every key and certificate from dir and makes (or issues again) the ones missing, not matching their
// key, not signed by their CA, naming something else than opts asks for, or near their end. A run killed
// halfway leaves files that are each whole (written by rename); the next run completes the rest.
func Ensure(dir string, opts Options) (*PKI, error) {
	if opts.TrustDomain == "" {
		return nil, fmt.Errorf("pki: empty trust domain")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	e := &ensurer{s: store{dir}, opts: opts, files: map[string][]byte{}}
	for _, step := range []func() error{e.mesh, e.etcd, e.apiServer, e.serviceAccount} {
		if err := step(); err != nil {
			return nil, fmt.Errorf("pki in %s: %w", dir, err)
		}
	}
	return &PKI{Dir: dir, Made: e.made, files: e.files}, nil
}

type ensurer struct {
	s     store
	opts  Options
	files map[string][]byte
	made  []string
}

// mesh is the mesh root and istiod's plugged-in CA under it (an intermediate that signs only workloads).
func (e *ensurer) mesh() error {
	org := e.opts.TrustDomain
	root, err := e.ca(RootCert, RootKey, caSpec{cn: "istio-sidecar mesh root", org: org, pathLen: 1, validity: rootValidity}, nil)
	if err != nil {
		return err
	}
	inter, err := e.ca(IstiodCACert, IstiodCAKey, caSpec{cn: "istiod", org: org, validity: interValidity}, root)
	if err != nil {
		return err
	}
	if err := e.derived(IstiodRootCert, root.certPEM()); err != nil {
		return err
	}
	return e.derived(IstiodCertChain, append(inter.certPEM(), root.certPEM()...))
}

// etcd has its own CA: etcd gives every certificate of its CA the whole keyspace, so that CA signs nothing but
// etcd's server certificate and the API server's client certificate.
func (e *ensurer) etcd() error {
	ca, err := e.ca(EtcdCACert, EtcdCAKey, caSpec{cn: "etcd CA", org: "istio-sidecar", validity: rootValidity}, nil)
	if err != nil {
		return err
	}
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	server := leafSpec{cn: "etcd", dns: []string{"localhost"}, ips: withLoopback(e.opts.EtcdIPs), keepIPs: e.opts.EtcdIPs == nil, usage: both}
	if err := e.leaf(EtcdServerCert, EtcdServerKey, server, ca); err != nil {
		return err
	}
	return e.leaf(EtcdAPIServerCert, EtcdAPIServerKey, leafSpec{cn: "kube-apiserver", usage: clientAuth}, ca)
}

var (
	serverAuth = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	clientAuth = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
)

// apiServer is the API server's CA: its serving certificate and the client certificates it authenticates.
func (e *ensurer) apiServer() error {
	ca, err := e.ca(APIServerCACert, APIServerCAKey, caSpec{cn: "kube-apiserver CA", org: "istio-sidecar", validity: rootValidity}, nil)
	if err != nil {
		return err
	}
	serving := leafSpec{cn: APIServerName, dns: []string{APIServerName, "localhost"}, ips: withLoopback(e.opts.APIServerIPs),
		keepIPs: e.opts.APIServerIPs == nil, usage: serverAuth}
	leaves := []struct {
		cert, key string
		spec      leafSpec
	}{
		{APIServerServingCert, APIServerServingKey, serving},
		{AdminCert, AdminKey, leafSpec{cn: AdminUser, org: []string{AdminGroup}, usage: clientAuth}},
		{IstiodCert, IstiodKey, leafSpec{cn: IstiodUser, usage: clientAuth}},
		{ControllerCert, ControllerKey, leafSpec{cn: ControllerUser, usage: clientAuth}},
	}
	for _, l := range leaves {
		if err := e.leaf(l.cert, l.key, l.spec, ca); err != nil {
			return err
		}
	}
	return nil
}

func (e *ensurer) serviceAccount() error {
	priv, pub, ok, err := e.s.loadSAKeys()
	if err != nil {
		return err
	}
	if !ok {
		if priv, pub, err = serviceAccountKeys(); err != nil {
			return err
		}
		if err := e.s.write(saKeyFile, priv); err != nil {
			return err
		}
		if err := e.s.write(saPubFile, pub); err != nil {
			return err
		}
		e.made = append(e.made, saKeyFile)
	}
	e.files[saKeyFile], e.files[saPubFile] = priv, pub
	return nil
}

// ca loads or makes a CA; one signed by parent must still verify against it. Its organization (the trust
// domain) is not compared: a changed flag must not replace the mesh root under every workload.
func (e *ensurer) ca(certName, keyName string, s caSpec, parent *pair) (*pair, error) {
	p, ok, err := e.s.loadPair(certName, keyName)
	if err != nil {
		return nil, err
	}
	if !ok || !p.cert.IsCA || !fresh(p.cert) || p.cert.Subject.CommonName != s.cn ||
		(parent != nil && p.cert.CheckSignatureFrom(parent.cert) != nil) {
		if p, err = newCA(s, parent); err != nil {
			return nil, err
		}
		if err := e.s.savePair(p, certName, keyName); err != nil {
			return nil, err
		}
		e.made = append(e.made, certName)
	}
	return p, e.record(p, certName, keyName)
}

// leaf loads or issues a leaf certificate of ca.
func (e *ensurer) leaf(certName, keyName string, s leafSpec, ca *pair) error {
	s.validity = leafValidity
	p, ok, err := e.s.loadPair(certName, keyName)
	if err != nil {
		return err
	}
	if ok && s.keepIPs {
		s.ips = p.cert.IPAddresses
	}
	if !ok || !fresh(p.cert) || p.cert.CheckSignatureFrom(ca.cert) != nil || !says(p.cert, s) {
		if p, err = sign(s, ca); err != nil {
			return err
		}
		if err := e.s.savePair(p, certName, keyName); err != nil {
			return err
		}
		e.made = append(e.made, certName)
	}
	return e.record(p, certName, keyName)
}

// derived writes a file made of others (a chain) when its content differs.
func (e *ensurer) derived(name string, want []byte) error {
	have, err := e.s.read(name)
	if err != nil {
		return err
	}
	if !bytes.Equal(have, want) {
		if err := e.s.write(name, want); err != nil {
			return err
		}
	}
	e.files[name] = want
	return nil
}

func (e *ensurer) record(p *pair, certName, keyName string) error {
	key, err := p.keyPEM()
	if err != nil {
		return err
	}
	e.files[certName], e.files[keyName] = p.certPEM(), key
	return nil
}

func fresh(c *x509.Certificate) bool { return time.Until(c.NotAfter) > renewBefore }

// says reports whether a certificate names exactly what the spec asks for.
func says(c *x509.Certificate, s leafSpec) bool {
	return c.Subject.CommonName == s.cn && slices.Equal(c.Subject.Organization, s.org) &&
		sameSet(c.DNSNames, s.dns) && sameSet(ipStrings(c.IPAddresses), ipStrings(s.ips)) &&
		slices.Equal(c.ExtKeyUsage, s.usage)
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

func withLoopback(ips []net.IP) []net.IP {
	return append([]net.IP{net.IPv4(127, 0, 0, 1)}, ips...)
}
