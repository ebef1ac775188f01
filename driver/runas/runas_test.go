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
	argv := Argv(self, 1337, 1337, []string{"/bin/sh", "-c", "id -u; id -g; id -G"})
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got := strings.Fields(string(out)); strings.Join(got, " ") != "1337 1337 1337" {
		t.Fatalf("uid, gid, groups = %q; want 1337, 1337 and no other group", out)
	}
}

func TestRun_RefusesRoot(t *testing.T) {
	for _, args := range [][]string{{"0", "1337", "--", "/bin/true"}, {"1337", "0", "--", "/bin/true"}, {"1337", "1337", "/bin/true"}} {
		if err := run(args); err == nil {
			t.Errorf("%v: want an error", args)
		}
	}
}
