package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/istio-sidecar/istio-sidecar/controller/identity"
	"github.com/istio-sidecar/istio-sidecar/controller/identity/policy"
	"github.com/istio-sidecar/istio-sidecar/driver/istio"
)

// runFlags are `run`'s flags; the Nomad address comes from NOMAD_ADDR (and NOMAD_CACERT and the rest of the
// CLI's variables), the token from -nomad-token-file or NOMAD_TOKEN.
type runFlags struct {
	kubeconfig, apiserver, apiserverCA, clientCert, clientKey, serverName string
	nomadTokenFile, rootCert, namespacePolicy, logLevel, discoveryAddress string
	tokenTTL, refreshBefore, resync                                       time.Duration
	kubeQPS                                                               float64
	kubeBurst                                                             int
	reg                                                                   registrationFlags
	restConfig                                                            *rest.Config // made by config
}

// add registers run's flags, registration's among them.
func (f *runFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig `FILE` of the controller's API-server identity")
	fs.StringVar(&f.apiserver, "apiserver", "", "API server `URL`, instead of -kubeconfig")
	fs.StringVar(&f.apiserverCA, "apiserver-ca", "", "`FILE`: the CA of the API server's serving certificate")
	fs.StringVar(&f.clientCert, "client-cert", "", "`FILE`: the controller's client certificate")
	fs.StringVar(&f.clientKey, "client-key", "", "`FILE`: its key")
	fs.StringVar(&f.serverName, "tls-server-name", "", "`NAME` the API server's certificate must carry, when not the URL's host")
	fs.StringVar(&f.nomadTokenFile, "nomad-token-file", "", "`FILE` holding the controller's Nomad ACL token (else NOMAD_TOKEN)")
	fs.StringVar(&f.rootCert, "root-cert", "", "`FILE`: the mesh root certificate (PEM) written beside each token")
	fs.StringVar(&f.discoveryAddress, "discovery-address", "", "istiod's `HOST:PORT` (its Nomad service) for the groups' Variables (default: none; the plugin's discovery_address applies)")
	fs.StringVar(&f.namespacePolicy, "namespace-policy", "", "JSON `FILE` {\"<nomad ns>\": [\"<istio ns>\", ...]} (default: the same name only)")
	fs.DurationVar(&f.tokenTTL, "token-ttl", time.Hour, "lifetime of each token (at least 10m, at most 24h)")
	fs.DurationVar(&f.refreshBefore, "refresh-before", 0, "replace a token this long before it expires (default a third of -token-ttl)")
	fs.DurationVar(&f.resync, "resync", 5*time.Minute, "list everything again this often, beside the event stream")
	fs.StringVar(&f.logLevel, "log-level", "info", "trace, debug, info, warn or error")
	// client-go's own default (5/s, burst 10) makes a full sync of a few hundred groups or services take minutes.
	fs.Float64Var(&f.kubeQPS, "kube-api-qps", 50, "sustained requests per second to the API server")
	fs.IntVar(&f.kubeBurst, "kube-api-burst", 100, "requests to the API server allowed in a burst above -kube-api-qps")
	f.reg.add(fs)
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	var f runFlags
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.add(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "run: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if !(f.kubeQPS > 0) || f.kubeBurst < 1 { // NaN included
		fmt.Fprintf(stderr, "run: -kube-api-qps %g, -kube-api-burst %d: both must be more than 0\n", f.kubeQPS, f.kubeBurst)
		return exitUsage
	}
	if err := f.reg.check(); err != nil {
		fmt.Fprintf(stderr, "run: %v\n", err)
		return exitUsage
	}
	cfg, err := f.config(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "run: %v\n", err)
		return exitUsage
	}
	c, err := identity.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "run: %v\n", err)
		return exitUsage
	}
	reg, err := f.registration(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "run: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	cfg.Log.Info("running", "nomad", cfg.Nomad.Address(), "token_ttl", cfg.TTL, "refresh_before", cfg.RefreshBefore,
		"registration", reg != nil)
	var wg sync.WaitGroup
	if reg != nil {
		wg.Add(1)
		go func() { defer wg.Done(); reg.Run(ctx) }()
	}
	c.Run(ctx)
	wg.Wait()
	cfg.Log.Info("stopped")
	return exitOK
}

// config turns the flags into the controller's configuration; each error names the flag and its value.
func (f *runFlags) config(stderr io.Writer) (identity.Config, error) {
	level := hclog.LevelFromString(f.logLevel)
	if level == hclog.NoLevel {
		return identity.Config{}, fmt.Errorf("-log-level %q: want trace, debug, info, warn or error", f.logLevel)
	}
	cfg := identity.Config{TTL: f.tokenTTL, RefreshBefore: f.refreshBefore, Resync: f.resync,
		Log: hclog.New(&hclog.LoggerOptions{Name: "istio-sidecar-controller", Level: level, Output: stderr, JSONFormat: true})}
	if cfg.RefreshBefore == 0 {
		cfg.RefreshBefore = cfg.TTL / 3
	}
	if f.tokenTTL < 10*time.Minute || f.tokenTTL > identity.MaxTTL {
		return cfg, fmt.Errorf("-token-ttl %s: the API server issues tokens for at least 10m, and the controller's "+
			"admission policy allows at most %s", f.tokenTTL, identity.MaxTTL)
	}
	if cfg.RefreshBefore <= 0 || cfg.RefreshBefore >= cfg.TTL {
		return cfg, fmt.Errorf("-refresh-before %s: must be more than 0 and less than -token-ttl %s", f.refreshBefore, f.tokenTTL)
	}
	if f.resync <= 0 {
		return cfg, fmt.Errorf("-resync %s: must be more than 0", f.resync)
	}
	if f.rootCert == "" {
		return cfg, errors.New("-root-cert: required (the mesh root certificate, PEM)")
	}
	root, err := os.ReadFile(f.rootCert)
	if err != nil {
		return cfg, fmt.Errorf("-root-cert %q: %w", f.rootCert, err)
	}
	if !strings.Contains(string(root), "-----BEGIN CERTIFICATE-----") {
		return cfg, fmt.Errorf("-root-cert %q: no PEM certificate in it", f.rootCert)
	}
	cfg.RootCert = string(root)
	if f.discoveryAddress != "" {
		if err := istio.CheckHostPort(f.discoveryAddress); err != nil {
			return cfg, fmt.Errorf("-discovery-address %q: %w", f.discoveryAddress, err)
		}
		cfg.DiscoveryAddress = f.discoveryAddress
	}
	if f.namespacePolicy != "" {
		if cfg.Policy, err = policy.Load(f.namespacePolicy); err != nil {
			return cfg, fmt.Errorf("-namespace-policy %q: %w", f.namespacePolicy, err)
		}
	}
	if cfg.Nomad, err = f.nomad(); err != nil {
		return cfg, err
	}
	rc, err := f.rest()
	if err != nil {
		return cfg, err
	}
	rc.QPS, rc.Burst = float32(f.kubeQPS), f.kubeBurst
	f.restConfig = rc
	if cfg.Kube, err = kubernetes.NewForConfig(rc); err != nil {
		return cfg, fmt.Errorf("API server client: %w", err)
	}
	return cfg, nil
}

// nomad is Nomad's client as the CLI would make it, with the token from -nomad-token-file when given.
func (f *runFlags) nomad() (*api.Client, error) {
	conf := api.DefaultConfig()
	if f.nomadTokenFile != "" {
		tok, err := os.ReadFile(f.nomadTokenFile)
		if err != nil {
			return nil, fmt.Errorf("-nomad-token-file %q: %w", f.nomadTokenFile, err)
		}
		conf.SecretID = strings.TrimSpace(string(tok))
		if conf.SecretID == "" {
			return nil, fmt.Errorf("-nomad-token-file %q: empty", f.nomadTokenFile)
		}
	}
	c, err := api.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("Nomad client (NOMAD_ADDR %q): %w", conf.Address, err)
	}
	return c, nil
}

// rest is the API server's client configuration: -kubeconfig, or the pieces, never both.
func (f *runFlags) rest() (*rest.Config, error) {
	pieces := f.apiserver != "" || f.apiserverCA != "" || f.clientCert != "" || f.clientKey != ""
	switch {
	case f.kubeconfig != "" && pieces:
		return nil, errors.New("-kubeconfig and -apiserver/-apiserver-ca/-client-cert/-client-key: give one or the other")
	case f.kubeconfig != "":
		rc, err := clientcmd.BuildConfigFromFlags("", f.kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("-kubeconfig %q: %w", f.kubeconfig, err)
		}
		if f.serverName != "" {
			rc.TLSClientConfig.ServerName = f.serverName
		}
		return rc, nil
	}
	if u, err := url.Parse(f.apiserver); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("-apiserver %q: want https://HOST:PORT (or -kubeconfig)", f.apiserver)
	}
	for _, p := range [][2]string{{"-apiserver-ca", f.apiserverCA}, {"-client-cert", f.clientCert}, {"-client-key", f.clientKey}} {
		name, v := p[0], p[1]
		if v == "" {
			return nil, fmt.Errorf("%s: required with -apiserver", name)
		}
		if _, err := os.Stat(v); err != nil {
			return nil, fmt.Errorf("%s %q: %w", name, v, err)
		}
	}
	return &rest.Config{Host: f.apiserver, TLSClientConfig: rest.TLSClientConfig{CAFile: f.apiserverCA,
		CertFile: f.clientCert, KeyFile: f.clientKey, ServerName: f.serverName}}, nil
}
