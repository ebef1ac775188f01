package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// clientTo sends every request to srv, whatever the URL says, as the namespace dialer sends them to the
// namespace's loopback.
func clientTo(srv *httptest.Server) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}}}
}

func TestWaitReady_ReturnsOnceTheProxyAnswers200(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz/ready" {
			t.Errorf("probed %s", r.URL.Path)
		}
		if calls.Add(1) < 4 {
			http.Error(w, "Envoy proxy is NOT ready: config not received from XDS server", http.StatusServiceUnavailable)
			return
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := WaitReady(ctx, clientTo(srv), 50*time.Millisecond, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 4 {
		t.Fatalf("%d probes, want 4", calls.Load())
	}
}

func TestWaitReady_SaysWhatWasMissing(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "Envoy proxy is NOT ready: config not received from XDS server", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err := WaitReady(ctx, clientTo(srv), 50*time.Millisecond, func() error { return nil })
	if err == nil || !strings.Contains(err.Error(), "503 Envoy proxy is NOT ready: config not received from XDS server") {
		t.Fatalf("got %v", err)
	}
}

func TestWaitReady_StopsAtOnceWhenTheProxyExits(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	exited := errors.New("pilot-agent exited with code 255")
	err := WaitReady(t.Context(), clientTo(srv), time.Hour, func() error { return exited })
	if !errors.Is(err, exited) || !strings.Contains(err.Error(), "proxy exited before it was ready") {
		t.Fatalf("got %v", err)
	}
}
