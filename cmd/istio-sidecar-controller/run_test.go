package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRunFlagErrorsNameTheFlag(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(root, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badPolicy := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(badPolicy, []byte(`{"team-a": ["Bad_Name"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{}, "-root-cert: required"},
		{[]string{"-root-cert", "/nonexistent"}, `-root-cert "/nonexistent"`},
		{[]string{"-root-cert", root, "-token-ttl", "5m"}, "-token-ttl 5m0s"},
		{[]string{"-root-cert", root, "-token-ttl", "25h"}, "-token-ttl 25h0m0s"},
		{[]string{"-root-cert", root, "-refresh-before", "2h"}, "-refresh-before 2h0m0s"},
		{[]string{"-root-cert", root, "-namespace-policy", badPolicy}, `"Bad_Name"`},
		{[]string{"-root-cert", root, "-discovery-address", "istiod"}, `-discovery-address "istiod"`},
		{[]string{"-root-cert", root, "-discovery-address", "10.0.0.5:015012"}, `-discovery-address "10.0.0.5:015012"`},
		{[]string{"-root-cert", root, "-discovery-address", ":15012"}, `-discovery-address ":15012"`},
		{[]string{"-root-cert", root, "-apiserver", "http://x"}, `-apiserver "http://x"`},
		{[]string{"-root-cert", root, "-apiserver", "https://x:6443"}, "-apiserver-ca: required"},
		{[]string{"-root-cert", root, "-kubeconfig", "/nonexistent"}, `-kubeconfig "/nonexistent"`},
		{[]string{"-root-cert", root, "-kubeconfig", "k", "-apiserver", "https://x"}, "one or the other"},
		{[]string{"-root-cert", root, "-nomad-token-file", "/nonexistent"}, `-nomad-token-file "/nonexistent"`},
		{[]string{"-root-cert", root, "-domain", ".cluster.local"}, `-domain ".cluster.local"`},
		{[]string{"-root-cert", root, "-check-interval", "0s"}, "-check-interval 0s"},
		{[]string{"-root-cert", root, "-kube-api-qps", "0"}, "-kube-api-qps 0"},
		{[]string{"-root-cert", root, "-kube-api-burst", "0"}, "-kube-api-burst 0"},
	} {
		var stderr bytes.Buffer
		if code := cmdRun(c.args, &bytes.Buffer{}, &stderr); code != exitUsage || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("run %v = %d, %q; want exit %d naming %s", c.args, code, stderr.String(), exitUsage, c.want)
		}
	}
}

// TestRunEndsOnSIGTERM runs the command against servers that are not there: it keeps retrying, and SIGTERM ends
// it with exit 0.
func TestRunEndsOnSIGTERM(t *testing.T) {
	if os.Getenv("ISTIO_SIDECAR_CONTROLLER_RUN") == "1" {
		os.Exit(run(flagArgs(), os.Stdout, os.Stderr))
	}
	dir := t.TempDir()
	files := map[string]string{"root.pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
		"ca.pem": "", "cert.pem": "", "key.pem": "", "token": "secret\n"}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f := func(name string) string { return filepath.Join(dir, name) }
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunEndsOnSIGTERM$", "--", "run", "-root-cert", f("root.pem"),
		"-apiserver", "https://127.0.0.1:1", "-apiserver-ca", f("ca.pem"), "-client-cert", f("cert.pem"),
		"-client-key", f("key.pem"), "-nomad-token-file", f("token"))
	cmd.Env = append(os.Environ(), "ISTIO_SIDECAR_CONTROLLER_RUN=1", "NOMAD_ADDR=http://127.0.0.1:1")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "listing again after backoff") {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("the controller never tried Nomad: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil || !strings.Contains(stderr.String(), `"stopped"`) {
			t.Errorf("after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("SIGTERM did not end it:\n%s", stderr.String())
	}
}

// flagArgs are the arguments after "--" of the re-executed test binary.
func flagArgs() []string {
	for i, a := range os.Args {
		if a == "--" {
			return os.Args[i+1:]
		}
	}
	return nil
}
