package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCall_PrintsOneLinePerAttempt(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	target := strings.TrimPrefix(srv.URL, "http://")
	var out, errOut bytes.Buffer
	if code := run([]string{"call", "-target", target, "-every", "10ms", "-count", "3"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	want := strings.Repeat("call "+target+" ok\n", 3)
	if out.String() != want {
		t.Errorf("stdout = %q, want %q", out.String(), want)
	}
}

func TestCall_RefusedConnectionSaysSo(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close() // nothing listens there now
	var out, errOut bytes.Buffer
	if code := run([]string{"call", "-target", target, "-count", "1"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if want := "call " + target + " failed: connection refused\n"; out.String() != want {
		t.Errorf("stdout = %q, want %q", out.String(), want)
	}
}

func TestCall_RejectsBadTarget(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"call", "-target", "no-port"}, &out, &errOut); code != 2 {
		t.Errorf("exit %d, want 2 (stderr %q)", code, errOut.String())
	}
}
