package driver

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/istio-sidecar/istio-sidecar/driver/proxy"
	"github.com/istio-sidecar/istio-sidecar/driver/rules"
)

func probersOf(t *testing.T, body string) (string, error) {
	t.Helper()
	c, err := decodeTask(t, body)
	if err != nil {
		return "", err
	}
	s, _ := defaultConfig().validate()
	ts, err := c.validate(s)
	if err != nil {
		return "", err
	}
	cfg := &drivers.TaskConfig{AllocID: "4f1c2d3e-aaaa-bbbb-cccc-000000000000", JobName: "payments", TaskGroupName: "api"}
	env, err := proxyEnvironment(cfg, s, ts, rules.ModeRedirect)
	if local := env["REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION"]; (local == "true") != (env["ISTIO_KUBE_APP_PROBERS"] != "") {
		t.Errorf("REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION = %q with ISTIO_KUBE_APP_PROBERS %q", local, env["ISTIO_KUBE_APP_PROBERS"])
	}
	return env["ISTIO_KUBE_APP_PROBERS"], err
}

// The JSON is what Istio's injector writes for a pod's rewritten probes, which pilot-agent decodes.
func TestAppProber_RendersIstioKubeAppProbers(t *testing.T) {
	got, err := probersOf(t, `
app_prober {
  name = "server"
  path = "/healthz?full=1"
  port = 8080
}
app_prober {
  name    = "server"
  probe   = "livez"
  type    = "tcp"
  port    = 8080
  timeout = "1500ms"
}
app_prober {
  name         = "grpc"
  type         = "grpc"
  port         = 9090
  grpc_service = "ledger.v1.Ledger"
}
app_prober {
  name   = "admin"
  path   = "/ready"
  scheme = "HTTPS"
  port   = 8443
}`)
	if err != nil {
		t.Fatal(err)
	}
	var decoded, want map[string]any
	if err := json.Unmarshal([]byte(got), &decoded); err != nil {
		t.Fatalf("ISTIO_KUBE_APP_PROBERS is not JSON: %v: %s", err, got)
	}
	json.Unmarshal([]byte(`{
  "/app-health/server/readyz": {"httpGet": {"path": "/healthz?full=1", "port": 8080, "scheme": "HTTP"}, "timeoutSeconds": 1},
  "/app-health/server/livez": {"tcpSocket": {"port": 8080}, "timeoutSeconds": 2},
  "/app-health/grpc/readyz": {"grpc": {"port": 9090, "service": "ledger.v1.Ledger"}, "timeoutSeconds": 1},
  "/app-health/admin/readyz": {"httpGet": {"path": "/ready", "port": 8443, "scheme": "HTTPS"}, "timeoutSeconds": 1}
}`), &want)
	a, _ := json.Marshal(decoded)
	b, _ := json.Marshal(want)
	if string(a) != string(b) {
		t.Fatalf("ISTIO_KUBE_APP_PROBERS\n got %s\nwant %s", a, b)
	}
}

func TestAppProber_NoneSetsNothing(t *testing.T) {
	got, err := probersOf(t, ``)
	if err != nil || got != "" {
		t.Fatalf("no app_prober: ISTIO_KUBE_APP_PROBERS = %q, %v; want unset", got, err)
	}
}

func TestAppProber_BadFieldsNameFieldAndValue(t *testing.T) {
	block := func(kv string) string { return "app_prober {\n" + kv + "\n}\n" }
	cases := []struct{ body, want string }{
		{block(`port = 8080`), `"name" is required`},
		{block(`name = "server"`), `"port" is required`},
		{block(`name = "Server"` + "\nport = 8080"), `app_prober[0].name: "Server"`},
		{block(`name = "a/b"` + "\nport = 8080"), `app_prober[0].name: "a/b"`},
		{block(`name = "s"` + "\nport = 8080\nprobe = \"healthz\""), `app_prober[0].probe: "healthz"`},
		{block(`name = "s"` + "\nport = 8080\ntype = \"exec\""), `app_prober[0].type: "exec"`},
		{block(`name = "s"` + "\nport = 0"), `app_prober[0].port: 0`},
		{block(`name = "s"` + "\nport = 65536"), `app_prober[0].port: 65536`},
		{block(`name = "s"` + "\nport = 15000"), `app_prober[0].port: 15000 is the proxy's Envoy admin port`},
		{block(`name = "s"` + "\nport = 15020"), `app_prober[0].port: 15020 is the proxy's status port`},
		{block(`name = "s"` + "\nport = 80\npath = \"healthz\""), `app_prober[0].path: "healthz"`},
		{block(`name = "s"` + "\nport = 80\npath = \"/a b\""), `app_prober[0].path: "/a b"`},
		{block(`name = "s"` + "\nport = 80\npath = \"/a#b\""), `app_prober[0].path: "/a#b"`},
		{block(`name = "s"` + "\nport = 80\nscheme = \"ftp\""), `app_prober[0].scheme: "ftp"`},
		{block(`name = "s"` + "\nport = 80\ntimeout = \"0s\""), `app_prober[0].timeout: "0s"`},
		{block(`name = "s"` + "\nport = 80\ntimeout = \"2m\""), `app_prober[0].timeout: "2m" is over a minute`},
		{block(`name = "s"` + "\nport = 80\ntype = \"grpc\"\ngrpc_service = \"a b\""), `app_prober[0].grpc_service: "a b"`},
		{block(`name = "s"`+"\nport = 80") + block(`name = "s"`+"\nport = 81"), `app_prober[1]: a second readyz prober for "s"`},
		{strings.Repeat(block(`name = "s"`+"\nport = 80"), 17), `app_prober: 17 blocks, at most 16`},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			if _, err := probersOf(t, tc.body); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// A job's env never sets the probers, even under a passthrough prefix that covers the name: pilot-agent runs
// them as the uncaptured proxy user.
func TestAppProber_JobEnvCannotSetProbers(t *testing.T) {
	job := map[string]string{"ISTIO_KUBE_APP_PROBERS": `{"/app-health/x/readyz":{"tcpSocket":{"port":4646}}}`}
	for _, kv := range proxy.EnvList(job, []string{"ISTIO_"}, map[string]string{}) {
		if strings.HasPrefix(kv, "ISTIO_KUBE_APP_PROBERS=") {
			t.Fatalf("the job's ISTIO_KUBE_APP_PROBERS reached pilot-agent: %s", kv)
		}
	}
}
