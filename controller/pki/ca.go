// Package pki makes and keeps the control plane's keys and certificates: the mesh root and istiod's plugged-in
// intermediate, the API server's CA with its serving and client certificates, etcd's CA with its server
// certificate and the API server's client certificate, and the service-account token key pair. Each trust
// domain has a CA of its own. Standard library crypto only.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// backdate covers clock skew between the machine that signs and the ones that verify.
const backdate = time.Hour

// pair is a certificate with its private key.
type pair struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

func serial() (*big.Int, error) { return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126)) }

// keyAndSerial is what every new certificate starts from: its own key and a random serial.
func keyAndSerial() (*ecdsa.PrivateKey, *big.Int, error) {
	key, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	return key, sn, err
}

// caSpec is what a CA certificate says. PathLen 0 makes a CA that signs only leaves.
type caSpec struct {
	cn, org  string
	pathLen  int
	validity time.Duration
}

// leafSpec is what a leaf certificate says: its subject, its names and what it is for.
type leafSpec struct {
	cn       string
	org      []string
	dns      []string
	ips      []net.IP
	keepIPs  bool // ips are the default: keep those of the existing certificate
	usage    []x509.ExtKeyUsage
	validity time.Duration
}

// newCA makes a CA signed by parent, or self-signed when parent is nil.
func newCA(s caSpec, parent *pair) (*pair, error) {
	key, sn, err := keyAndSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: pkix.Name{Organization: []string{s.org}, CommonName: s.cn},
		NotBefore: now.Add(-backdate), NotAfter: now.Add(s.validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true, MaxPathLen: s.pathLen, MaxPathLenZero: s.pathLen == 0,
	}
	issuer := &pair{cert: tmpl, key: key}
	if parent != nil {
		issuer = parent
	}
	return create(tmpl, key, issuer)
}

// sign makes a leaf certificate signed by ca.
func sign(s leafSpec, ca *pair) (*pair, error) {
	key, sn, err := keyAndSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: pkix.Name{CommonName: s.cn, Organization: s.org},
		NotBefore: now.Add(-backdate), NotAfter: now.Add(s.validity),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: s.usage, DNSNames: s.dns, IPAddresses: s.ips,
		BasicConstraintsValid: true,
	}
	return create(tmpl, key, ca)
}

func create(tmpl *x509.Certificate, key *ecdsa.PrivateKey, issuer *pair) (*pair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer.cert, &key.PublicKey, issuer.key)
	if err != nil {
		return nil, fmt.Errorf("signing %s: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &pair{cert: cert, key: key}, nil
}

func (p *pair) certPEM() []byte { return pemBlock("CERTIFICATE", p.cert.Raw) }

func (p *pair) keyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(p.key)
	if err != nil {
		return nil, err
	}
	return pemBlock("PRIVATE KEY", der), nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// serviceAccountKeys is the API server's token signing pair: RSA, for RS256, the algorithm every token verifier
// supports.
func serviceAccountKeys() (priv, pub []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key)), pemBlock("PUBLIC KEY", pubDER), nil
}
