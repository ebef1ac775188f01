package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/istio-sidecar/istio-sidecar/driver/istio"
)

// drainPath is pilot-agent's status server endpoint that drains Envoy's listeners.
const drainPath = "/drain"

// Drain asks pilot-agent to drain Envoy's listeners now (POST :15020/drain), so that in-flight requests finish
// while the stop signal is on its way. pilot-agent accepts it from localhost only, hence the namespace-aware
// client.
func Drain(ctx context.Context, client *http.Client) error {
	url := localURL(istio.StatusPort, drainPath)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s", url, resp.Status)
	}
	return nil
}
