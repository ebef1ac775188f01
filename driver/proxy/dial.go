package proxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// Client returns an HTTP client for the sidecar's local ports. In group mode those listen on the loopback of
// the allocation's network namespace (nsPath), which the plugin is not in; each connection's socket is created
// inside that namespace, and a socket keeps its namespace for life. An empty nsPath means the plugin's own.
func Client(nsPath string, timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: timeout}
	dial := dialer.DialContext
	if nsPath != "" {
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialIn(ctx, nsPath, dialer, network, addr)
		}
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:       dial,
			DisableKeepAlives: true, // probes are rare; an idle socket would pin the namespace open
		},
	}
}

func dialIn(ctx context.Context, nsPath string, d *net.Dialer, network, addr string) (net.Conn, error) {
	netns, err := ns.GetNS(nsPath)
	if err != nil {
		return nil, fmt.Errorf("opening network namespace %s: %w", nsPath, err)
	}
	defer netns.Close()
	var conn net.Conn
	err = netns.Do(func(ns.NetNS) error {
		var derr error
		conn, derr = d.DialContext(ctx, network, addr)
		return derr
	})
	return conn, err
}

// localURL is a URL on the loopback address the sidecar's ports listen on.
func localURL(port int, path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", port, path)
}
