package driver

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/istio-sidecar/istio-sidecar/driver/istio"
	"github.com/istio-sidecar/istio-sidecar/driver/proxy"
)

// AppProberConfig is one app_prober block: a health check of the group's app that pilot-agent answers on
// its status port, for Nomad's service checks to use when inbound traffic is captured and peers must present
// mTLS (Istio's probe rewrite for pods).
type AppProberConfig struct {
	Name        string `codec:"name"`
	Probe       string `codec:"probe"`
	Type        string `codec:"type"`
	Path        string `codec:"path"`
	Scheme      string `codec:"scheme"`
	GRPCService string `codec:"grpc_service"`
	Port        int    `codec:"port"`
	Timeout     string `codec:"timeout"`
}

// maxAppProbers bounds what one group asks pilot-agent to serve (Kubernetes has three probes per container).
const maxAppProbers = 16

var appProberTypes = []string{"http", "tcp", "grpc"}

// validateAppProbers turns the blocks into probers; the field named in an error is app_prober[i].<key>.
func validateAppProbers(blocks []AppProberConfig) ([]proxy.AppProber, error) {
	if len(blocks) > maxAppProbers {
		return nil, fmt.Errorf("app_prober: %d blocks, at most %d", len(blocks), maxAppProbers)
	}
	out := make([]proxy.AppProber, 0, len(blocks))
	seen := map[string]bool{}
	for i, b := range blocks {
		p, err := b.validate(fmt.Sprintf("app_prober[%d]", i))
		if err != nil {
			return nil, err
		}
		path := proxy.AppHealthPath(p.Name, p.Probe)
		if seen[path] {
			return nil, fmt.Errorf("app_prober[%d]: a second %s prober for %q (%s)", i, p.Probe, p.Name, path)
		}
		seen[path] = true
		out = append(out, p)
	}
	return out, nil
}

func (b AppProberConfig) validate(field string) (proxy.AppProber, error) {
	p := proxy.AppProber{Name: b.Name, Probe: b.Probe, Type: b.Type, Port: b.Port, GRPCService: b.GRPCService}
	if err := checkLabel1123(field+".name", b.Name); err != nil {
		return p, err
	}
	if !slices.Contains(proxy.AppProberKinds, b.Probe) {
		return p, fmt.Errorf("%s.probe: %q must be one of %v", field, b.Probe, proxy.AppProberKinds)
	}
	if !slices.Contains(appProberTypes, b.Type) {
		return p, fmt.Errorf("%s.type: %q must be one of %v", field, b.Type, appProberTypes)
	}
	if b.Port < 1 || b.Port > 65535 {
		return p, fmt.Errorf("%s.port: %d must be between 1 and 65535", field, b.Port)
	}
	if reserved := istio.ReservedPort(b.Port); reserved != "" {
		return p, fmt.Errorf("%s.port: %d is the proxy's %s, not the app's", field, b.Port, reserved)
	}
	var err error
	if p.Timeout, err = positiveDuration(field+".timeout", b.Timeout); err != nil {
		return p, err
	}
	if p.Timeout > time.Minute {
		return p, fmt.Errorf("%s.timeout: %q is over a minute", field, b.Timeout)
	}
	switch b.Type {
	case "http":
		return p, b.validateHTTP(field, &p)
	case "grpc":
		if len(b.GRPCService) > 255 || strings.ContainsFunc(b.GRPCService, notPrintable) {
			return p, fmt.Errorf("%s.grpc_service: %q must be visible ASCII, at most 255 characters", field, b.GRPCService)
		}
	}
	return p, nil
}

func (b AppProberConfig) validateHTTP(field string, p *proxy.AppProber) error {
	if !strings.HasPrefix(b.Path, "/") || len(b.Path) > 1024 || strings.ContainsFunc(b.Path, notPrintable) ||
		strings.Contains(b.Path, "#") {
		return fmt.Errorf("%s.path: %q must start with / and be a URL path of visible ASCII, no spaces or #, at most 1024 characters",
			field, b.Path)
	}
	switch strings.ToLower(b.Scheme) {
	case "http":
		p.Scheme = "HTTP"
	case "https":
		p.Scheme = "HTTPS"
	default:
		return fmt.Errorf("%s.scheme: %q must be http or https", field, b.Scheme)
	}
	p.Path = b.Path
	return nil
}

// notPrintable is anything but visible ASCII: no spaces, controls or other encodings in what reaches a URL.
func notPrintable(r rune) bool { return r <= 0x20 || r > 0x7e }
