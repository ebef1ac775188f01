package harness

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
)

// ProxyCertChain is the workload certificate chain the allocation's proxy holds: the SDS secret "default" in
// Envoy's (or the stand-in's) config_dump, read inside the group's network namespace. Certificates are public
// there; keys are redacted.
func ProxyCertChain(allocID string) ([]*x509.Certificate, error) {
	out, err := InNetns(NetnsPath(allocID), "curl", "-sf", "--max-time", "3", "http://127.0.0.1:15000/config_dump")
	if err != nil {
		return nil, err
	}
	var dump struct {
		Configs []struct {
			Secrets []struct {
				Name   string `json:"name"`
				Secret struct {
					TLSCertificate struct {
						CertificateChain struct {
							InlineBytes []byte `json:"inline_bytes"`
						} `json:"certificate_chain"`
					} `json:"tls_certificate"`
				} `json:"secret"`
			} `json:"dynamic_active_secrets"`
		} `json:"configs"`
	}
	if err := json.Unmarshal([]byte(out), &dump); err != nil {
		return nil, fmt.Errorf("config_dump: %w", err)
	}
	for _, c := range dump.Configs {
		for _, s := range c.Secrets {
			if s.Name == "default" && len(s.Secret.TLSCertificate.CertificateChain.InlineBytes) > 0 {
				return ParsePEMCerts(s.Secret.TLSCertificate.CertificateChain.InlineBytes)
			}
		}
	}
	return nil, fmt.Errorf("no SDS secret \"default\" with a certificate in the proxy's config_dump yet")
}

// VerifyChain checks that the chain's leaf is a workload certificate issued under root, through the chain's
// intermediates (istiod's plugged-in CA), and returns the leaf.
func VerifyChain(chain []*x509.Certificate, root *x509.Certificate) (*x509.Certificate, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("no certificate in the chain")
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return nil, fmt.Errorf("the workload certificate does not chain to the mesh root: %w", err)
	}
	return chain[0], nil
}

// ParsePEMCerts parses every CERTIFICATE block of data.
func ParsePEMCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out, nil
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}
