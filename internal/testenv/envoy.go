package testenv

import (
	"fmt"
	"os/exec"
	"strings"
)

// EnvoyVersion runs `<envoy> --version` and returns the line that names the version, and whether the binary is
// the project's stand-in (testdoubles/standin-envoy), which reports an all-zero build SHA as no real Envoy build
// does.
func EnvoyVersion(envoy string) (version string, standin bool, err error) {
	out, err := exec.Command(envoy, "--version").Output()
	if err != nil {
		return "", false, fmt.Errorf("%s --version: %w", envoy, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "version") {
			version = strings.TrimSpace(line)
			break
		}
	}
	return version, strings.Contains(string(out), strings.Repeat("0", 40)+"/"), nil
}
