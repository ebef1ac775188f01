// Command testapp is the workload of the e2e scenarios, the examples and the demo: a server that answers and a
// client that calls, each printing one line per event so that a test (or a person) reads what happened.
//
//	testapp serve -addr :8080
//	testapp call -target 10.0.0.5:8080 [-every 1s] [-count N] [-timeout 2s]
//
// call makes its first attempt the instant it starts, because that is the connection a sidecar must not miss:
// an app started before the proxy listens gets "connection refused" on 15001, and one started before the
// interception rules exist leaves the mesh without anyone noticing. Each attempt opens a new connection (no
// keep-alive) so that each one is a new connection for the proxy to capture, and prints
//
//	call 10.0.0.5:8080 ok
//	call 10.0.0.5:8080 failed: connection refused
//
// Standard library only: it is built from the root module by the tests and by `make demo`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "call":
		return call(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "testapp: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  testapp serve -addr ADDR [-unhealthy-if FILE]            answer HTTP on ADDR; /healthz 503 while FILE exists
  testapp call -target HOST:PORT [-every 1s] [-count N] [-timeout 2s]
                                                             GET http://HOST:PORT/ now, then every interval
`)
}

// serve answers every request with 200 and a line naming the server, and logs each request.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", ":8080", "address to listen on")
	healthFile := fs.String("unhealthy-if", "", "/healthz answers 503 while this file exists, else 200")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "testapp serve: %v\n", err)
		return 1
	}
	host, _ := os.Hostname()
	fmt.Fprintf(stdout, "serve %s listening\n", ln.Addr())
	srv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(stdout, "serve %s %s %s from %s\n", ln.Addr(), r.Method, r.URL.Path, r.RemoteAddr)
			if r.URL.Path == "/healthz" && *healthFile != "" {
				if _, err := os.Stat(*healthFile); err == nil {
					http.Error(w, "unhealthy: "+*healthFile+" exists", http.StatusServiceUnavailable)
					return
				}
			}
			fmt.Fprintf(w, "hello from testapp on %s (%s)\n", host, ln.Addr())
		}),
	}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "testapp serve: %v\n", err)
		return 1
	}
	return 0
}

// call GETs the target now and then every interval, count times (0: until stopped). It exits 0 when it is
// stopped or has made its attempts, whatever their outcome: the outcomes are the output.
func call(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("target", "", "HOST:PORT to call")
	every := fs.Duration("every", time.Second, "interval between attempts")
	count := fs.Int("count", 0, "number of attempts (0: until stopped)")
	timeout := fs.Duration("timeout", 2*time.Second, "deadline of one attempt")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if _, _, err := net.SplitHostPort(*target); err != nil {
		fmt.Fprintf(stderr, "testapp call: -target %q: %v\n", *target, err)
		return 2
	}
	if *every <= 0 || *count < 0 || *timeout <= 0 {
		fmt.Fprintln(stderr, "testapp call: -every and -timeout must be positive and -count not negative")
		return 2
	}
	client := &http.Client{
		Timeout:   *timeout,
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	}
	ticker := time.NewTicker(*every)
	defer ticker.Stop()
	for n := 1; *count == 0 || n <= *count; n++ {
		if err := attempt(ctx, client, *target); err != nil {
			fmt.Fprintf(stdout, "call %s failed: %s\n", *target, err)
		} else {
			fmt.Fprintf(stdout, "call %s ok\n", *target)
		}
		if *count != 0 && n == *count {
			break
		}
		select {
		case <-ctx.Done():
			return 0
		case <-ticker.C:
		}
	}
	return 0
}

// attempt is one GET on a new connection; any status but 200 is a failure.
func attempt(ctx context.Context, client *http.Client, target string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target+"/", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return errors.New(shortError(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}

// shortError names the cause without net/http's wrapping ("Get \"http://...\": dial tcp ...: connect: "), so
// that a line reads "connection refused" whether the refusal came from the target or from a dead proxy.
func shortError(err error) string {
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		return errno.Error()
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed before a response (EOF)"
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return "timeout"
	}
	for {
		inner := errors.Unwrap(err)
		if inner == nil {
			return err.Error()
		}
		err = inner
	}
}
