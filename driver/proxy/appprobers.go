package proxy

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// AppProber is one of the app's health checks, served by pilot-agent on its status port (15020) at
// AppHealthPath: the way Istio's injector rewrites a pod's probes (ISTIO_KUBE_APP_PROBERS), so that a checker
// outside the mesh (Nomad's service checks) reaches the app through the agent instead of the captured,
// mTLS-only app port. pilot-agent probes the app on localhost inside the group; the destination host is never
// a job's to choose.
type AppProber struct {
	Name        string        // the path segment, a DNS label
	Probe       string        // readyz, livez or startupz
	Type        string        // http, tcp or grpc
	Path        string        // http: the request path
	Scheme      string        // http: HTTP or HTTPS
	GRPCService string        // grpc: the health service name, "" for the server's overall health
	Port        int           // the app's port inside the group
	Timeout     time.Duration // rounded up to whole seconds, as Kubernetes' timeoutSeconds
}

// AppProberKinds are the probes pilot-agent serves for an app.
var AppProberKinds = []string{"readyz", "livez", "startupz"}

// AppHealthPath is where pilot-agent serves the prober on its status port.
func AppHealthPath(name, probe string) string {
	return fmt.Sprintf("/app-health/%s/%s", name, probe)
}

// The JSON pilot-agent decodes (pilot/cmd/pilot-agent/status: KubeAppProbers, Kubernetes' probe actions).
type kubeProber struct {
	HTTPGet        *httpGetAction `json:"httpGet,omitempty"`
	TCPSocket      *portAction    `json:"tcpSocket,omitempty"`
	GRPC           *grpcAction    `json:"grpc,omitempty"`
	TimeoutSeconds int32          `json:"timeoutSeconds,omitempty"`
}

type httpGetAction struct {
	Path   string `json:"path,omitempty"`
	Port   int    `json:"port"`
	Scheme string `json:"scheme,omitempty"`
}

type portAction struct {
	Port int `json:"port"`
}

type grpcAction struct {
	Port    int     `json:"port"`
	Service *string `json:"service"`
}

// AppProbersEnv renders validated probers as ISTIO_KUBE_APP_PROBERS; "" for none.
func AppProbersEnv(probers []AppProber) (string, error) {
	if len(probers) == 0 {
		return "", nil
	}
	out := make(map[string]kubeProber, len(probers))
	for _, p := range probers {
		kp := kubeProber{TimeoutSeconds: int32(math.Ceil(p.Timeout.Seconds()))}
		switch p.Type {
		case "http":
			kp.HTTPGet = &httpGetAction{Path: p.Path, Port: p.Port, Scheme: p.Scheme}
		case "tcp":
			kp.TCPSocket = &portAction{Port: p.Port}
		case "grpc":
			service := p.GRPCService
			kp.GRPC = &grpcAction{Port: p.Port, Service: &service}
		default:
			return "", fmt.Errorf("app prober %q: type %q", p.Name, p.Type)
		}
		out[AppHealthPath(p.Name, p.Probe)] = kp
	}
	b, err := json.Marshal(out)
	return string(b), err
}
