package driver

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/istio-sidecar/istio-sidecar/driver/proxy"
)

// refusedPath is where the examples' template writes the controller's reason for giving a group no token
// (the `refused` key of its Variable nomad/jobs/<job>/<group>).
const refusedPath = "secrets/istio-refused"

// maxReasonLen bounds how much of a reason goes into an error, and so into a task event.
const maxReasonLen = 512

// requireToken fails when the bootstrap token is missing or empty: without it pilot-agent never gets a
// workload certificate, and a proxy that runs anyway only hides why the mesh refuses the group's traffic.
// The controller's reason, when its template wrote one, is what the job's owner needs to read.
func requireToken(taskDir, rel string) error {
	data, err := proxy.ReadInTaskDir(taskDir, "token_path", rel)
	switch {
	case err == nil && len(bytes.TrimSpace(data)) > 0:
		return nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return err
	}
	msg := fmt.Sprintf("token_path: %q is missing or empty: the proxy would get no workload certificate", rel)
	if reason := refusedReason(taskDir); reason != "" {
		return fmt.Errorf("%s; the mesh refused this group: %s", msg, reason)
	}
	return fmt.Errorf("%s (is the controller running, and does its Variable nomad/jobs/<job>/<group> exist?)", msg)
}

// refusedReason is the controller's reason from secrets/istio-refused, on one line and bounded; empty if
// there is none.
func refusedReason(taskDir string) string {
	data, err := proxy.ReadInTaskDir(taskDir, "istio-refused", refusedPath)
	if err != nil {
		return ""
	}
	reason := strings.Join(strings.Fields(string(data)), " ")
	if len(reason) > maxReasonLen {
		reason = reason[:maxReasonLen] + "…"
	}
	return reason
}
