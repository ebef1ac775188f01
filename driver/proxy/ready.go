package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/istio-sidecar/istio-sidecar/driver/istio"
)

// ReadyURL is Envoy's health listener, which Istio's bootstrap routes to the agent's readiness check: it
// answers 200 only when Envoy is LIVE with its first listeners and clusters from xDS, so it proves both
// processes.
var ReadyURL = localURL(istio.HealthPort, "/healthz/ready")

// firstPoll is the first wait between readiness probes; it doubles up to the caller's maximum. The proxy is
// usually ready within ~100 ms, and every millisecond between ready and noticing it holds the app back.
const firstPoll = 10 * time.Millisecond

// WaitReady polls ReadyURL until it answers 200, starting fast and backing off to maxInterval. It gives up
// when ctx ends, or at once when alive reports the proxy gone, and then says what was still missing: the last
// answer or connection error.
func WaitReady(ctx context.Context, client *http.Client, maxInterval time.Duration, alive func() error) error {
	interval := min(firstPoll, maxInterval)
	timer := time.NewTimer(interval)
	defer timer.Stop()
	last := "no answer yet"
	for {
		ok, state := probe(ctx, client)
		if ok {
			return nil
		}
		if state != "" {
			last = state
		}
		if err := alive(); err != nil {
			return fmt.Errorf("proxy exited before it was ready (last readiness state: %s): %w", last, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("proxy not ready: GET %s: %s", ReadyURL, last)
		case <-timer.C:
		}
		interval = min(2*interval, maxInterval)
		timer.Reset(interval)
	}
}

func probe(ctx context.Context, client *http.Client) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ReadyURL, nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return false, ""
		}
		if strings.Contains(err.Error(), "connection refused") {
			return false, fmt.Sprintf("nothing listens on %d yet (Envoy has not started its health listener)", istio.HealthPort)
		}
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode == http.StatusOK {
		return true, ""
	}
	return false, fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
}
