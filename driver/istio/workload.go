package istio

import (
	"regexp"
	"strings"
)

// DefaultServiceAccount is the service account of a sidecar whose task config names none.
const DefaultServiceAccount = "default"

// Namespace is the Istio namespace of a sidecar: the task config's, else its Nomad namespace folded into a DNS
// label. The driver starts pilot-agent with it and the controller mints the group's token for it, so both call
// this one function.
func Namespace(configured, nomadNamespace string) string {
	if configured != "" {
		return configured
	}
	return DNSLabel(nomadNamespace, "default")
}

// ServiceAccount is the sidecar's service account: the task config's, else DefaultServiceAccount.
func ServiceAccount(configured string) string {
	if configured != "" {
		return configured
	}
	return DefaultServiceAccount
}

var (
	notLabel = regexp.MustCompile(`[^a-z0-9-]+`)
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
)

// IsDNSLabel reports whether s is an RFC 1123 DNS label, as Kubernetes names a namespace.
func IsDNSLabel(s string) bool { return dnsLabel.MatchString(s) }

// DNSLabel folds a Nomad name (which may hold '.', '_' or capitals) into a DNS label, or fallback when nothing
// of it is left.
func DNSLabel(name, fallback string) string {
	l := strings.Trim(notLabel.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if len(l) > 63 {
		l = strings.TrimRight(l[:63], "-")
	}
	if l == "" {
		return fallback
	}
	return l
}
