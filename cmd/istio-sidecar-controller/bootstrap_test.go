package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBootstrapFlags: bad input is refused before anything is made, naming the flag and the value.
func TestBootstrapFlags(t *testing.T) {
	crds := filepath.Join(t.TempDir(), "crds.yaml")
	if err := os.WriteFile(crds, []byte("kind: CustomResourceDefinition\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "operator")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-crds", crds}, "-dir is required"},
		{[]string{"-dir", dir}, "-crds is required"},
		{[]string{"-dir", dir, "-crds", dir + "/missing.yaml"}, "-crds " + dir + "/missing.yaml: not a readable file"},
		{[]string{"-dir", dir, "-crds", crds, "-apiserver-address", "10.0.0.1,nope"}, `invalid value "10.0.0.1,nope" for flag -apiserver-address: "nope" is not an IP address`},
		{[]string{"-dir", dir, "-crds", crds, "-wait", "-1s"}, "-wait -1s: negative"},
		{[]string{"-dir", dir, "-crds", crds, "-trust-domain", "a/b"}, `-trust-domain "a/b": not a trust domain`},
		{[]string{"-dir", dir, "-crds", crds, "extra"}, `unexpected argument "extra"`},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		if code := run(append([]string{"bootstrap"}, c.args...), &stdout, &stderr); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", c.args, code, exitUsage, stderr.String())
		}
		if !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: %q, want %q", c.args, stderr.String(), c.want)
		}
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("a refused run created %s", dir)
	}
}
