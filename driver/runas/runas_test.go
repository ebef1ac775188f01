package runas

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The test binary imports this package, so its init handles the re-exec as the plugin binary's does.
func TestArgv_DropsToUserWithNoGroups(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to change user")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv := Argv(self, 1337, 1337, nil, []string{"/bin/sh", "-c", "id -u; id -g; id -G"})
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got := strings.Fields(string(out)); strings.Join(got, " ") != "1337 1337 1337" {
		t.Fatalf("uid, gid, groups = %q; want 1337, 1337 and no other group", out)
	}
}

// TPROXY's proxy keeps CAP_NET_RAW, and only it, across the drop and the exec of its children.
func TestArgv_KeepsOnlyTheNamedCapability(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to change user")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv := Argv(self, 1337, 1337, []string{"net_raw"}, []string{"/bin/sh", "-c", "id -u; id -G; grep -E '^Cap(Eff|Amb|Bnd):' /proc/self/status"})
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// CAP_NET_RAW is bit 13: 0x2000.
	for _, want := range []string{"1337\n1337\n", "CapEff:\t0000000000002000", "CapBnd:\t0000000000002000", "CapAmb:\t0000000000002000"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("want %q in:\n%s", want, out)
		}
	}
}

func TestRun_RefusesRoot(t *testing.T) {
	for _, args := range [][]string{{"0", "1337", "-", "--", "/bin/true"}, {"1337", "0", "-", "--", "/bin/true"}, {"1337", "1337", "/bin/true"}, {"1337", "1337", "NET ADMIN", "--", "/bin/true"}} {
		if err := run(args); err == nil {
			t.Errorf("%v: want an error", args)
		}
	}
}
