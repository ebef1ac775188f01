package driver

import (
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/istio-sidecar/istio-sidecar/driver/proxy"
	"github.com/istio-sidecar/istio-sidecar/internal/testenv"
)

// healthApp is an app in a namespace whose /healthz answers with status, counting the requests that reach it
// and those that came straight from the checker (from is the checker's address).
type healthApp struct {
	from   string
	status atomic.Int32
	hits   atomic.Int32
	direct atomic.Int32
}

func serveHealth(t *testing.T, nsPath, addr, from string) *healthApp {
	t.Helper()
	var l net.Listener
	err := ns.WithNetNSPath(nsPath, func(ns.NetNS) (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listening on %s in %s: %v", addr, nsPath, err)
	}
	app := &healthApp{from: from}
	app.status.Store(http.StatusOK)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		app.hits.Add(1)
		if host, _, _ := net.SplitHostPort(r.RemoteAddr); host == app.from {
			app.direct.Add(1)
		}
		w.WriteHeader(int(app.status.Load()))
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return app
}

func statusOf(c *http.Client, url string) int {
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAppProber_ACheckerReachesTheAppThroughTheAgent is Nomad's service check of a meshed group, from another
// host: the app's own port is captured (a plain-text checker would meet Envoy's inbound listener, which under
// STRICT mTLS refuses it), while the app_prober's path on the status port reaches the app through pilot-agent
// and follows its health.
func TestAppProber_ACheckerReachesTheAppThroughTheAgent(t *testing.T) {
	t.Parallel()
	b := integration(t)
	td := newTestDriver(t, b, nil)
	group := testenv.NewNetns(t, "isc-prb")
	checker := testenv.NewNetns(t, "isc-chk")
	group.LinkTo(t, checker, "10.214.0.2/24", "10.214.0.1/24")
	app := serveHealth(t, group.Path, "0.0.0.0:8080", "10.214.0.1")
	cfg := td.newTask(t, group.Path, `
app_prober {
  name = "server"
  path = "/healthz"
  port = 8080
}`, nil)
	td.start(t, cfg)
	client := proxy.Client(checker.Path, 2*time.Second)

	// Envoy's inbound listener takes it: a real one with no istiod refuses it, the stand-in passes it on from
	// its own socket. Either way the checker never reaches the app itself.
	statusOf(client, "http://10.214.0.2:8080/healthz")
	if n := app.direct.Load(); n != 0 {
		t.Fatalf("a checker's request to the app's port reached the app directly (%d): inbound capture is off", n)
	}
	hits := app.hits.Load()
	check := "http://10.214.0.2:15020" + proxy.AppHealthPath("server", "readyz")
	if got := statusOf(client, check); got != http.StatusOK {
		t.Fatalf("GET %s = %d with the app healthy, want 200\n%s", check, got, taskLogs(cfg))
	}
	if app.hits.Load() == hits {
		t.Fatalf("the prober answered 200 without asking the app")
	}
	app.status.Store(http.StatusServiceUnavailable)
	waitFor(t, 10*time.Second, "the prober to report the app unhealthy", func() bool {
		got := statusOf(client, check)
		return got != http.StatusOK && got != 0
	})
	if got := statusOf(client, "http://10.214.0.2:15020"+proxy.AppHealthPath("other", "readyz")); got == http.StatusOK {
		t.Errorf("a path with no prober answered 200")
	}
}
