package testenv

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSkipOrFail_FailsOnlyUnderMakeTest(t *testing.T) {
	for _, tc := range []struct {
		env, want string
	}{{"", Skipped}, {"1", Failed}} {
		t.Run(RequireEnv+"="+tc.env, func(t *testing.T) {
			t.Setenv(RequireEnv, tc.env)
			r := Record(func(tb TB) { SkipOrFail(tb, "needs %s", "a thing") })
			if r.Ended != tc.want || r.Message != "needs a thing" {
				t.Errorf("ended %q with %q, want %q with %q", r.Ended, r.Message, tc.want, "needs a thing")
			}
		})
	}
}

func TestRequireTools_MissingToolEndsTheTest(t *testing.T) {
	t.Setenv(RequireEnv, "1")
	r := Record(func(tb TB) { RequireTools(tb, "sh", "no-such-tool-istio-sidecar") })
	if r.Ended != Failed || !strings.Contains(r.Message, "no-such-tool-istio-sidecar") {
		t.Errorf("ended %q with %q, want a failure naming the missing tool", r.Ended, r.Message)
	}
	if r := Record(func(tb TB) { RequireTools(tb, "sh") }); r.Ended != "" {
		t.Errorf("with every tool present the helper ended the test: %s %q", r.Ended, r.Message)
	}
}

func TestRootCert_SelfSignedCAValidNow(t *testing.T) {
	data, err := RootCert("test root")
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("not one PEM certificate: %q", data)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.IsCA || cert.Subject.CommonName != "test root" {
		t.Errorf("IsCA=%t CN=%q, want a CA named %q", cert.IsCA, cert.Subject.CommonName, "test root")
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if now := time.Now(); now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		t.Errorf("not valid now: %s to %s", cert.NotBefore, cert.NotAfter)
	}
}

func TestNewNetns_GoneAfterTheTest(t *testing.T) {
	RequireRoot(t, "creates a network namespace")
	RequireTools(t, "ip")
	var ns Netns
	t.Run("uses", func(t *testing.T) {
		ns = NewNetns(t, "isc-testenv")
		ns.AddInterface(t, "10.215.0.2/24")
		if out := ns.IP(t, "-brief", "addr", "show", "eth0"); !strings.Contains(out, "10.215.0.2/24") {
			t.Errorf("eth0 lacks its address: %s", out)
		}
		if out := ns.IP(t, "-brief", "link", "show", "lo"); !strings.Contains(out, "UP") {
			t.Errorf("loopback is not up: %s", out)
		}
	})
	if _, err := os.Stat(ns.Path); !os.IsNotExist(err) {
		t.Errorf("%s still exists after the test that made it ended (stat: %v)", ns.Path, err)
	}
}

func TestEnvoyVersion_TellsTheStandinFromARealEnvoy(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		standin    bool
	}{
		{"stand-in", "envoy  version: 0000000000000000000000000000000000000000/1.36.0/Clean/RELEASE/BoringSSL", true},
		{"real", "envoy  version: 6d9bb7d9a85d616b220d1f8fe67b61f82bbdb8d3/1.36.0/Clean/RELEASE/BoringSSL", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			envoy := filepath.Join(t.TempDir(), "envoy")
			if err := os.WriteFile(envoy, []byte("#!/bin/sh\necho\necho '"+tc.line+"'\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			version, standin, err := EnvoyVersion(envoy)
			if err != nil || version != tc.line || standin != tc.standin {
				t.Errorf("EnvoyVersion = %q, %t, %v; want %q, %t", version, standin, err, tc.line, tc.standin)
			}
		})
	}
}
