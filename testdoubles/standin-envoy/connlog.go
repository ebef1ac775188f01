package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// connRecord is one line of the connection log. The keys are a contract with tests (ours and the driver's
// e2e suite): add keys if needed, never rename or drop one.
type connRecord struct {
	Kind     string `json:"standin_envoy"` // always "connection"
	Time     string `json:"time"`          // RFC 3339, UTC, nanoseconds
	Listener string `json:"listener"`      // "outbound" (15001) or "inbound" (15006)
	Port     uint16 `json:"port"`          // the listener's port
	Src      string `json:"src"`           // the peer as the stand-in saw it
	Dst      string `json:"dst"`           // the local address the connection landed on after the redirect
	// OriginalDst is what SO_ORIGINAL_DST returned; "" when there was none.
	OriginalDst string `json:"original_dst"`
	// Cluster is the Envoy cluster the connection went to: one of istiod's for an outbound connection its
	// listeners and routes take, else PassthroughCluster (outbound) or InboundPassthroughCluster (inbound).
	Cluster string `json:"cluster,omitempty"`
	// Upstream is the address dialled: the original destination for a passthrough cluster, else one of the
	// cluster's endpoints. The stand-in speaks to it in plaintext, originating no TLS even where Envoy would
	// (Istio's auto mTLS to an endpoint labelled tlsMode istio).
	Upstream string `json:"upstream,omitempty"`
	// Outcome is "forwarded", "no_original_dst" (closed at once), "no_healthy_upstream" (the cluster has no
	// endpoint to use, and Envoy closes the connection) or "dial_failed".
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
	// UID is the stand-in's own uid: pilot-agent runs Envoy as 1337 when it runs as root with DNS capture
	// on :53 (pkg/istio-agent/agent.go), which decides whether iptables' owner match exempts our upstream.
	UID int `json:"uid"`
	// SrcUID owns the client socket when the client lives in this network namespace, else -1. It tells a
	// test whose traffic was captured, e.g. that the proxy's own uid never is.
	SrcUID int `json:"src_uid"`
}

// eventLog writes JSON lines to stderr, where pilot-agent passes Envoy's output on, and connection records
// additionally to the file named by STANDIN_ENVOY_CONNECTION_LOG so a test need not capture the task's stderr.
type eventLog struct {
	mu     sync.Mutex
	stderr io.Writer
	file   *os.File
}

func newEventLog(stderr io.Writer, connLogPath string) (*eventLog, error) {
	l := &eventLog{stderr: stderr}
	if connLogPath != "" {
		f, err := os.OpenFile(connLogPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", envConnectionLog, err)
		}
		l.file = f
	}
	return l, nil
}

func (l *eventLog) connection(rec connRecord) {
	rec.Kind = "connection"
	rec.Time = time.Now().UTC().Format(time.RFC3339Nano)
	line, err := json.Marshal(rec)
	if err != nil {
		return // a struct of strings and ints always marshals
	}
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.stderr.Write(line)
	if l.file != nil {
		// One write per line on an O_APPEND file keeps lines whole even if several processes share it.
		if _, err := l.file.Write(line); err != nil {
			fmt.Fprintf(l.stderr, `{"standin_envoy":"error","error":%q}`+"\n", "connection log: "+err.Error())
		}
	}
}

// event logs a lifecycle line such as {"standin_envoy":"ready",...} to stderr only.
func (l *eventLog) event(kind string, fields map[string]any) {
	doc := map[string]any{"standin_envoy": kind, "time": time.Now().UTC().Format(time.RFC3339Nano), "pid": os.Getpid()}
	for k, v := range fields {
		doc[k] = v
	}
	line, err := json.Marshal(doc)
	if err != nil {
		line, _ = json.Marshal(map[string]any{"standin_envoy": kind, "error": err.Error()})
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.stderr.Write(append(line, '\n'))
}
