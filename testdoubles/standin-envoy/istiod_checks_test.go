package main

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"slices"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/istio-sidecar/istio-sidecar/testdoubles/standin-envoy/xds"
)

// testCertificate: the workload certificate came over SDS (config_dump's "default" secret, key redacted), names
// the service account's SPIFFE identity, chains to the mesh root through istiod's CA, and /certs describes it.
func (s *istiodSidecar) testCertificate(t *testing.T) {
	var chain []byte
	waitFor(t, 60*time.Second, "the default secret in config_dump", func() error {
		dump, err := fetchConfigDump(s.client, "127.0.0.1:15000")
		if err != nil {
			return err
		}
		chain, err = defaultChain(dump)
		return err
	})
	leaf := verifyChain(t, chain, s.cp.RootCert)
	wantID := fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", s.cp.TrustDomain, s.ns, meshSA)
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != wantID {
		t.Errorf("certificate URI SANs = %v, want %s", leaf.URIs, wantID)
	}
	body, err := getBody(s.client, "http://127.0.0.1:15000/certs")
	if err != nil {
		t.Fatal(err)
	}
	var certs adminv3.Certificates
	if err := decodeAdmin(body, &certs); err != nil || len(certs.GetCertificates()) == 0 {
		t.Fatalf("/certs = %s: %v", body, err)
	}
	c := certs.GetCertificates()[0]
	d := c.GetCertChain()[0]
	if d.GetSerialNumber() != hex.EncodeToString(leaf.SerialNumber.Bytes()) || d.GetSubjectAltNames()[0].GetUri() != wantID ||
		!d.GetExpirationTime().AsTime().Equal(leaf.NotAfter) || !d.GetValidFrom().AsTime().Equal(leaf.NotBefore) {
		t.Errorf("/certs cert_chain = %v, want serial %x, SAN %s, %v..%v", d, leaf.SerialNumber, wantID, leaf.NotBefore, leaf.NotAfter)
	}
	if left := time.Until(leaf.NotAfter); d.GetDaysUntilExpiration() != uint64(left/(24*time.Hour)) {
		t.Errorf("days_until_expiration = %d, certificate expires in %v", d.GetDaysUntilExpiration(), left)
	}
	if len(c.GetCaCert()) == 0 {
		t.Error("/certs lists no CA certificate (ROOTCA)")
	}
}

// defaultChain is the certificate chain of the "default" secret; its private key must read "[redacted]".
func defaultChain(d *xds.Dump) ([]byte, error) {
	for _, ds := range d.Secrets.GetDynamicActiveSecrets() {
		if ds.GetName() != "default" {
			continue
		}
		var sec tlsv3.Secret
		if err := ds.GetSecret().UnmarshalTo(&sec); err != nil {
			return nil, err
		}
		if k := string(sec.GetTlsCertificate().GetPrivateKey().GetInlineBytes()); k != "[redacted]" {
			return nil, fmt.Errorf("private key in config_dump is %d bytes, not [redacted]", len(k))
		}
		return sec.GetTlsCertificate().GetCertificateChain().GetInlineBytes(), nil
	}
	return nil, fmt.Errorf("no default secret yet")
}

// verifyChain parses a PEM chain (leaf first) and verifies the leaf against root with the rest as intermediates.
func verifyChain(t *testing.T, chain, root []byte) *x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for rest := chain; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		t.Fatalf("no certificate in %q", chain)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AppendCertsFromPEM(root)
	for _, c := range certs[1:] {
		if !bytes.Equal(c.Raw, certs[0].Raw) {
			inter.AddCert(c)
		}
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("workload certificate does not verify against the mesh root: %v", err)
	}
	return certs[0]
}

// serviceEntry is a mesh service with one workload, as the controller will write them.
const serviceEntry = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: %[1]s}
spec:
  hosts: [api.%[1]s.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: api}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: api-0, namespace: %[1]s}
spec:
  address: 10.212.9.7
  ports: {http: 28080}
  labels: {app: api}
  serviceAccount: api
`

// testServiceEntryEndpoint: config applied with kubectl is pushed incrementally and lands where a test of Envoy
// looks for it: the cluster, its endpoint (EDS), and the route of the listener on its port (RDS).
func (s *istiodSidecar) testServiceEntryEndpoint(t *testing.T) {
	before := statsOf(t, s.client, updateStatsRegex)["cluster_manager.cds.update_success"]
	s.cp.Apply(t, fmt.Sprintf(serviceEntry, s.ns))
	cluster := fmt.Sprintf("outbound|8080||api.%s.svc.cluster.local", s.ns)
	var dump *xds.Dump
	waitFor(t, 60*time.Second, "the WorkloadEntry as an endpoint of "+cluster, func() error {
		var err error
		if dump, err = fetchConfigDump(s.client, "127.0.0.1:15000"); err != nil {
			return err
		}
		return hasEndpoint(dump, cluster, "10.212.9.7", 28080)
	})
	if !dynamicClusterNames(dump)[cluster] {
		t.Errorf("no active cluster %s", cluster)
	}
	if after := statsOf(t, s.client, updateStatsRegex)["cluster_manager.cds.update_success"]; after <= before {
		t.Errorf("cds.update_success %d -> %d: the push was not counted", before, after)
	}
	if !hasRoute(dump, "8080", "api."+s.ns+".svc.cluster.local") {
		t.Errorf("RDS route 8080 lacks api.%s.svc.cluster.local", s.ns)
	}
}

func hasEndpoint(d *xds.Dump, cluster, addr string, port uint32) error {
	for _, e := range d.Endpoints.GetDynamicEndpointConfigs() {
		var cla endpointv3.ClusterLoadAssignment
		if e.GetEndpointConfig().UnmarshalTo(&cla) != nil || cla.GetClusterName() != cluster {
			continue
		}
		for _, l := range cla.GetEndpoints() {
			for _, lb := range l.GetLbEndpoints() {
				sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
				if sa.GetAddress() == addr && sa.GetPortValue() == port {
					return nil
				}
			}
		}
		return fmt.Errorf("%s has endpoints %v", cluster, cla.GetEndpoints())
	}
	return fmt.Errorf("no endpoints for %s yet", cluster)
}

func hasRoute(d *xds.Dump, name, domain string) bool {
	for _, r := range d.Routes.GetDynamicRouteConfigs() {
		var rc routev3.RouteConfiguration
		if r.GetRouteConfig().UnmarshalTo(&rc) != nil || rc.GetName() != name {
			continue
		}
		for _, vh := range rc.GetVirtualHosts() {
			if slices.Contains(vh.GetDomains(), domain) {
				return true
			}
		}
	}
	return false
}

func dynamicClusterNames(d *xds.Dump) map[string]bool {
	out := map[string]bool{}
	for _, c := range d.Clusters.GetDynamicActiveClusters() {
		var cl clusterv3.Cluster
		if c.GetCluster().UnmarshalTo(&cl) == nil {
			out[cl.GetName()] = true
		}
	}
	return out
}

func dynamicListenerNames(d *xds.Dump) map[string]bool {
	out := map[string]bool{}
	for _, l := range d.Listeners.GetDynamicListeners() {
		var li listenerv3.Listener
		if l.GetActiveState().GetListener().UnmarshalTo(&li) == nil {
			out[li.GetName()] = true
		}
	}
	return out
}
