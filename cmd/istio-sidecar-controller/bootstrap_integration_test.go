package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/internal/controlplane"
	"github.com/istio-sidecar/istio-sidecar/internal/nomadtest"
)

// TestBootstrap_ExitCodeSaysWhetherItIsDone: without -wait, a bootstrap before the API server is registered is
// the guide's first step and exits 0 with what is pending; with -wait, still pending at the end is a failure, so
// that a script can tell.
func TestBootstrap_ExitCodeSaysWhetherItIsDone(t *testing.T) {
	crds := controlplane.BinariesFromEnv(t).CRDs
	nomad := nomadtest.Start(t)
	t.Setenv("NOMAD_ADDR", nomad.Addr)
	op, _, err := nomad.Management.ACLTokens().Create(&api.ACLToken{Name: "operator", Type: "management"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("NOMAD_TOKEN", op.SecretID)
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"bootstrap", "-dir", dir, "-crds", crds}, &stdout, &stderr); code != exitOK ||
		!strings.Contains(stdout.String(), "pending: ") {
		t.Fatalf("first step: exit %d, want 0 and pending\n%s%s", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"bootstrap", "-dir", dir, "-crds", crds, "-wait", "2s"}, &stdout, &stderr); code != exitFailed ||
		!strings.Contains(stderr.String(), "not finished after -wait 2s") {
		t.Fatalf("with -wait and no API server: exit %d, want %d and why\n%s%s", code, exitFailed, stdout.String(), stderr.String())
	}
}
