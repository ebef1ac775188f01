package main

import (
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/istio-sidecar/istio-sidecar/testdoubles/standin-envoy/xds"
)

// redacted is what Envoy prints in place of a secret's key material in config_dump.
var redacted = &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: []byte("[redacted]")}}

// secretsDump lists the SDS secrets with their key material replaced, as Envoy's config_dump does: the private
// key and its password of a certificate, the keys of session tickets, a generic secret. Certificates and
// trusted CAs are public and stay.
func secretsDump(snap xds.Snapshot) *adminv3.SecretsConfigDump {
	d := &adminv3.SecretsConfigDump{}
	for _, e := range snap.Secrets {
		s := proto.Clone(e.Resource).(*tlsv3.Secret)
		redact(s)
		d.DynamicActiveSecrets = append(d.DynamicActiveSecrets, &adminv3.SecretsConfigDump_DynamicSecret{
			Name: e.Name, VersionInfo: e.Version, LastUpdated: timestamppb.New(e.LastUpdated), Secret: mustAny(s)})
	}
	return d
}

func redact(s *tlsv3.Secret) {
	if c := s.GetTlsCertificate(); c != nil {
		if c.PrivateKey != nil {
			c.PrivateKey = redacted
		}
		if c.Password != nil {
			c.Password = redacted
		}
	}
	if k := s.GetSessionTicketKeys(); k != nil {
		for i := range k.Keys {
			k.Keys[i] = redacted
		}
	}
	if g := s.GetGenericSecret(); g != nil && g.Secret != nil {
		g.Secret = redacted
	}
}

// handleCerts serves Envoy's /certs (envoy.admin.v3.Certificates). Envoy lists one entry per TLS context; every
// context istiod gives a sidecar pairs the same two secrets, so the stand-in lists one entry per certificate
// secret, its ca_cert the trusted CAs of the validation secrets, its cert_chain the certificate's leaf.
func (p *proxy) handleCerts(w http.ResponseWriter, _ *http.Request) {
	var cas, chains []*adminv3.CertificateDetails
	now := time.Now()
	for _, e := range p.snapshot().Secrets {
		s := e.Resource.(*tlsv3.Secret)
		if ca := s.GetValidationContext().GetTrustedCa(); ca != nil {
			cas = append(cas, certDetails(ca, now)...)
		}
		if c := s.GetTlsCertificate().GetCertificateChain(); c != nil {
			if leaf := certDetails(c, now); len(leaf) > 0 {
				chains = append(chains, leaf[0])
			}
		}
	}
	out := &adminv3.Certificates{}
	for _, c := range chains {
		out.Certificates = append(out.Certificates, &adminv3.Certificate{CaCert: cas, CertChain: []*adminv3.CertificateDetails{c}})
	}
	if len(chains) == 0 && len(cas) > 0 {
		out.Certificates = append(out.Certificates, &adminv3.Certificate{CaCert: cas})
	}
	body, err := adminJSON(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if len(out.Certificates) == 0 {
		body = []byte("{\n \"certificates\": []\n}\n") // protojson leaves an empty list out; Envoy prints it
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// certDetails describes each certificate of an inline PEM bundle as Envoy's /certs does. A file-based source
// would be read by Envoy; pilot-agent's SDS always sends inline bytes, so the stand-in reads nothing else.
func certDetails(ds *corev3.DataSource, now time.Time) []*adminv3.CertificateDetails {
	var out []*adminv3.CertificateDetails
	rest := ds.GetInlineBytes()
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return out
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			continue
		}
		days := uint64(0)
		if left := cert.NotAfter.Sub(now); left > 0 {
			days = uint64(left / (24 * time.Hour))
		}
		out = append(out, &adminv3.CertificateDetails{
			Path:                "<inline>",
			SerialNumber:        hex.EncodeToString(cert.SerialNumber.Bytes()),
			SubjectAltNames:     subjectAltNames(cert),
			DaysUntilExpiration: days,
			ValidFrom:           timestamppb.New(cert.NotBefore),
			ExpirationTime:      timestamppb.New(cert.NotAfter),
		})
	}
}

func subjectAltNames(c *x509.Certificate) []*adminv3.SubjectAlternateName {
	var out []*adminv3.SubjectAlternateName
	for _, u := range c.URIs {
		out = append(out, &adminv3.SubjectAlternateName{Name: &adminv3.SubjectAlternateName_Uri{Uri: u.String()}})
	}
	for _, d := range c.DNSNames {
		out = append(out, &adminv3.SubjectAlternateName{Name: &adminv3.SubjectAlternateName_Dns{Dns: d}})
	}
	for _, ip := range c.IPAddresses {
		out = append(out, &adminv3.SubjectAlternateName{Name: &adminv3.SubjectAlternateName_IpAddress{IpAddress: ip.String()}})
	}
	return out
}
