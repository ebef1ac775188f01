package proxy

import (
	"encoding/json"
	"fmt"
	"strings"
)

// ParsePilotAgentVersion reads `pilot-agent version -o json`. The JSON form is used because the plain -s output
// changed format in Istio 1.23.
func ParsePilotAgentVersion(out []byte) (string, error) {
	// pilot-agent may log to the same stream before the document; start at the first brace.
	if i := strings.IndexByte(string(out), '{'); i > 0 {
		out = out[i:]
	}
	var v struct {
		ClientVersion struct {
			Version string `json:"version"`
		} `json:"clientVersion"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return "", fmt.Errorf("parsing `pilot-agent version -o json`: %w", err)
	}
	if v.ClientVersion.Version == "" {
		return "", fmt.Errorf("parsing `pilot-agent version -o json`: no clientVersion.version")
	}
	return v.ClientVersion.Version, nil
}

// ParseEnvoyVersion reads `envoy --version`:
// "envoy  version: <sha>/<X.Y.Z>/<Clean|Modified>/<RELEASE|DEBUG>/<BoringSSL>"; the version is the second field.
func ParseEnvoyVersion(out []byte) (string, error) {
	s := string(out)
	i := strings.Index(s, "version:")
	if i < 0 {
		return "", fmt.Errorf("parsing `envoy --version`: no \"version:\" in %q", firstLine(s))
	}
	fields := strings.Split(strings.TrimSpace(firstLine(s[i+len("version:"):])), "/")
	if len(fields) < 2 || fields[1] == "" {
		return "", fmt.Errorf("parsing `envoy --version`: unexpected %q", firstLine(s))
	}
	return fields[1], nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
