package pki

import (
	"bytes"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func ensure(t *testing.T, dir string, opts Options) *PKI {
	t.Helper()
	p, err := Ensure(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func cert(t *testing.T, p *PKI, name string) *x509.Certificate {
	t.Helper()
	c, err := parseCert(p.File(name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

func pool(t *testing.T, pems ...[]byte) *x509.CertPool {
	t.Helper()
	cp := x509.NewCertPool()
	for _, b := range pems {
		if !cp.AppendCertsFromPEM(b) {
			t.Fatalf("no certificate in %q", b)
		}
	}
	return cp
}

// TestChains checks each certificate verifies for its use against its own CA, and not against another trust
// domain's CA.
func TestChains(t *testing.T) {
	p := ensure(t, t.TempDir(), Options{TrustDomain: "example.org", APIServerIPs: []net.IP{net.ParseIP("10.0.0.5")}, EtcdIPs: []net.IP{net.ParseIP("10.0.0.6")}})
	root, inter := pool(t, p.File(RootCert)), pool(t, p.File(IstiodCACert))
	// An istiod-signed workload chain is verified against the mesh root: the intermediate must be a CA under it.
	ic := cert(t, p, IstiodCACert)
	if _, err := ic.Verify(x509.VerifyOptions{Roots: root, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("istiod's intermediate does not verify against the mesh root: %v", err)
	}
	if !ic.IsCA || ic.MaxPathLen != 0 || !ic.MaxPathLenZero || ic.KeyUsage&x509.KeyUsageCertSign == 0 || ic.Subject.Organization[0] != "example.org" {
		t.Errorf("istiod's intermediate: CA %v pathlen %d usage %v org %v", ic.IsCA, ic.MaxPathLen, ic.KeyUsage, ic.Subject.Organization)
	}
	if !bytes.Equal(p.File(IstiodCertChain), append(p.File(IstiodCACert), p.File(RootCert)...)) || !bytes.Equal(p.File(IstiodRootCert), p.File(RootCert)) {
		t.Errorf("cacerts chain or root differ from the intermediate and the mesh root")
	}
	cases := []struct {
		name, dns, ip string
		ca            []byte
		usage         x509.ExtKeyUsage
	}{
		{APIServerServingCert, APIServerName, "10.0.0.5", p.File(APIServerCACert), x509.ExtKeyUsageServerAuth},
		{EtcdServerCert, "localhost", "10.0.0.6", p.File(EtcdCACert), x509.ExtKeyUsageServerAuth},
		{EtcdServerCert, "", "127.0.0.1", p.File(EtcdCACert), x509.ExtKeyUsageClientAuth}, // peers
		{EtcdAPIServerCert, "", "", p.File(EtcdCACert), x509.ExtKeyUsageClientAuth},
		{AdminCert, "", "", p.File(APIServerCACert), x509.ExtKeyUsageClientAuth},
		{IstiodCert, "", "", p.File(APIServerCACert), x509.ExtKeyUsageClientAuth},
		{ControllerCert, "", "", p.File(APIServerCACert), x509.ExtKeyUsageClientAuth},
	}
	for _, c := range cases {
		leaf := cert(t, p, c.name)
		opts := x509.VerifyOptions{Roots: pool(t, c.ca), DNSName: c.dns, KeyUsages: []x509.ExtKeyUsage{c.usage}}
		if _, err := leaf.Verify(opts); err != nil {
			t.Errorf("%s for %v: %v", c.name, c.usage, err)
		}
		if c.ip != "" {
			if err := leaf.VerifyHostname(c.ip); err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
		}
		opts.Roots = root
		if _, err := leaf.Verify(opts); err == nil {
			t.Errorf("%s verifies against the mesh root", c.name)
		}
		opts.Roots = inter
		if _, err := leaf.Verify(opts); err == nil {
			t.Errorf("%s verifies against istiod's CA", c.name)
		}
	}
	if _, err := cert(t, p, AdminCert).Verify(x509.VerifyOptions{Roots: pool(t, p.File(APIServerCACert)), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Errorf("the admin's client certificate can serve")
	}
}

func TestSubjects(t *testing.T) {
	p := ensure(t, t.TempDir(), Options{TrustDomain: "cluster.local"})
	for name, want := range map[string][2]string{
		AdminCert: {AdminUser, AdminGroup}, IstiodCert: {IstiodUser, ""}, ControllerCert: {ControllerUser, ""},
	} {
		c := cert(t, p, name)
		org := ""
		if len(c.Subject.Organization) > 0 {
			org = c.Subject.Organization[0]
		}
		if c.Subject.CommonName != want[0] || org != want[1] || len(c.Subject.Organization) > 1 {
			t.Errorf("%s: CN %q O %v, want %q %q", name, c.Subject.CommonName, c.Subject.Organization, want[0], want[1])
		}
	}
	key, err := parseKey(p.File(ServiceAccountKey))
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(key.Public())
	if !bytes.Equal(pemBlock("PUBLIC KEY", pubDER), p.File(ServiceAccountPub)) {
		t.Errorf("sa.pub is not sa.key's public key")
	}
}

// TestEnsureKeeps checks a second run changes no file, files are owner-only, and only what is broken is made anew.
func TestEnsureKeeps(t *testing.T) {
	dir := t.TempDir()
	opts := Options{TrustDomain: "cluster.local"}
	first := ensure(t, dir, opts)
	second := ensure(t, dir, opts)
	if len(first.Made) != 11 || len(second.Made) != 0 {
		t.Errorf("made %v, then %v", first.Made, second.Made)
	}
	for name, b := range first.files {
		if !bytes.Equal(second.File(name), b) {
			t.Errorf("%s changed on a second run", name)
		}
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", name, fi.Mode(), err)
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", fi.Mode())
	}
	// A run killed after the key of the controller's certificate was written but before the certificate.
	if err := os.Remove(filepath.Join(dir, ControllerKey)); err != nil {
		t.Fatal(err)
	}
	opts.APIServerIPs = []net.IP{net.ParseIP("192.0.2.1")}
	opts.TrustDomain = "example.org" // not a reason for a new mesh root
	third := ensure(t, dir, opts)
	if !slices.Equal(third.Made, []string{APIServerServingCert, ControllerCert}) {
		t.Errorf("made %v", third.Made)
	}
	for name := range first.files {
		changed := !bytes.Equal(third.File(name), first.File(name))
		want := name == ControllerCert || name == ControllerKey || name == APIServerServingCert || name == APIServerServingKey
		if changed != want {
			t.Errorf("%s changed = %v, want %v", name, changed, want)
		}
	}
	if err := cert(t, third, APIServerServingCert).VerifyHostname("192.0.2.1"); err != nil {
		t.Errorf("new address: %v", err)
	}
	// A run without the addresses keeps them; one with others replaces them.
	opts.APIServerIPs = nil
	if fourth := ensure(t, dir, opts); len(fourth.Made) != 0 {
		t.Errorf("a run without -apiserver-address made %v", fourth.Made)
	}
	opts.APIServerIPs = []net.IP{net.ParseIP("192.0.2.2")}
	fifth := ensure(t, dir, opts)
	if c := cert(t, fifth, APIServerServingCert); c.VerifyHostname("192.0.2.1") == nil || c.VerifyHostname("192.0.2.2") != nil {
		t.Errorf("serving certificate's addresses %v, want 127.0.0.1 and 192.0.2.2", c.IPAddresses)
	}
}

// TestNewRootReissuesIntermediate: a mesh root made anew (its files lost) cannot keep an intermediate it did not sign.
func TestNewRootReissuesIntermediate(t *testing.T) {
	dir := t.TempDir()
	opts := Options{TrustDomain: "cluster.local"}
	first := ensure(t, dir, opts)
	if err := os.Remove(filepath.Join(dir, RootKey)); err != nil {
		t.Fatal(err)
	}
	second := ensure(t, dir, opts)
	if bytes.Equal(first.File(RootCert), second.File(RootCert)) || bytes.Equal(first.File(IstiodCACert), second.File(IstiodCACert)) {
		t.Fatalf("root or intermediate kept")
	}
	if _, err := cert(t, second, IstiodCACert).Verify(x509.VerifyOptions{Roots: pool(t, second.File(RootCert))}); err != nil {
		t.Errorf("%v", err)
	}
	if !bytes.Equal(first.File(APIServerCACert), second.File(APIServerCACert)) {
		t.Errorf("the API server's CA changed with the mesh root")
	}
}
