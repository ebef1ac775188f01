package runas

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The test binary imports this package, so its init handles the re-exec as the plugin binary's does.
func TestArgv_DropsToUserWithNoGroups(t *testing.T) {
	self := rootSelf(t)
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
	self := rootSelf(t)
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

// rootSelf is this test binary, which handles the run-as re-exec as the plugin binary does; changing user
// needs root.
func rootSelf(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to change user")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return self
}

// runWithExtraFile runs argv with an extra descriptor (fd 3, not close-on-exec, as a leaky parent would hand on) and
// returns what the command printed.
func runWithExtraFile(t *testing.T, argv []string) string {
	t.Helper()
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.ExtraFiles = []*os.File{f}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return string(out)
}

// The proxy can never gain privileges (no_new_privs: setuid binaries such as su and mount stay inert), its
// bounding set holds nothing (REDIRECT) or only CAP_NET_RAW (TPROXY), and no descriptor above 2 reaches it.
func TestArgv_NoNewPrivsEmptyBoundingSetNoInheritedDescriptors(t *testing.T) {
	self := rootSelf(t)
	// No pipeline: the shell would hold the pipe's two ends while ls reads its descriptors.
	script := []string{"/bin/sh", "-c", "grep -E '^(NoNewPrivs|Cap(Eff|Amb|Bnd|Prm)):' /proc/$$/status; ls /proc/$$/fd"}
	for _, tc := range []struct {
		caps []string
		want []string
	}{
		{nil, []string{"NoNewPrivs:\t1", "CapBnd:\t0000000000000000", "CapEff:\t0000000000000000", "CapAmb:\t0000000000000000", "CapPrm:\t0000000000000000"}},
		{[]string{"net_raw"}, []string{"NoNewPrivs:\t1", "CapBnd:\t0000000000002000", "CapEff:\t0000000000002000", "CapAmb:\t0000000000002000"}},
	} {
		out := runWithExtraFile(t, Argv(self, 1337, 1337, tc.caps, script))
		for _, want := range tc.want {
			if !strings.Contains(out, want) {
				t.Errorf("caps %v: want %q in:\n%s", tc.caps, want, out)
			}
		}
		var fds []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.Contains(l, ":") {
				fds = append(fds, l)
			}
		}
		if got := strings.Join(fds, " "); got != "0 1 2" {
			t.Errorf("caps %v: descriptors %q reached the command, want only 0 1 2", tc.caps, got)
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
