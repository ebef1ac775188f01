package driver

import (
	"fmt"
	"net"
	"regexp"
	"time"

	"github.com/istio-sidecar/istio-sidecar/driver/istio"
)

var (
	// dns1123Label is Kubernetes' rule for namespaces and service accounts, which Istio puts in SPIFFE IDs.
	dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	// labelValue is Kubernetes' label value rule, which Istio applies to canonical names and workload labels.
	labelValue = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$`)
	labelKey   = regexp.MustCompile(`^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)
	token      = regexp.MustCompile(`^[A-Za-z0-9._-]{0,253}$`)
	envPrefix  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

func checkHostPort(field, v string) error {
	if err := istio.CheckHostPort(v); err != nil {
		return fmt.Errorf("%s: %q %w", field, v, err)
	}
	return nil
}

func checkDNSName(field, v string) error {
	if !istio.IsDNSName(v) {
		return fmt.Errorf("%s: %q must be a DNS name, such as cluster.local", field, v)
	}
	return nil
}

func checkLabel1123(field, v string) error {
	if !dns1123Label.MatchString(v) {
		return fmt.Errorf("%s: %q must be a lowercase DNS label (a-z, 0-9, '-', at most 63 characters)", field, v)
	}
	return nil
}

func checkLabelValue(field, v string) error {
	if len(v) > 63 || !labelValue.MatchString(v) {
		return fmt.Errorf("%s: %q must be a label value (letters, digits, '-', '_', '.', at most 63 characters)", field, v)
	}
	return nil
}

func checkToken(field, v string) error {
	if !token.MatchString(v) {
		return fmt.Errorf("%s: %q may only hold letters, digits, '.', '_' and '-'", field, v)
	}
	return nil
}

func positiveDuration(field, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s: %q must be a positive duration, such as 30s", field, v)
	}
	return d, nil
}

// checkIstiodSAN accepts what pilot-agent's ISTIOD_SAN does: a DNS name or an IP address; empty leaves it
// unset, so the discovery address's host is checked.
func checkIstiodSAN(v string) error {
	if v == "" {
		return nil
	}
	if net.ParseIP(v) != nil {
		return nil
	}
	if !istio.IsDNSName(v) {
		return fmt.Errorf("istiod_san: %q must be a DNS name or an IP address, such as istiod.service.nomad", v)
	}
	return nil
}
