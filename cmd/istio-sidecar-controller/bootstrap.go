package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/controller/bootstrap"
)

// ipList is a comma-separated list of IP addresses as a flag value.
type ipList []net.IP

func (l *ipList) String() string { return fmt.Sprint([]net.IP(*l)) }

func (l *ipList) Set(s string) error {
	for _, part := range strings.Split(s, ",") {
		ip := net.ParseIP(strings.TrimSpace(part))
		if ip == nil {
			return fmt.Errorf("%q is not an IP address", part)
		}
		*l = append(*l, ip)
	}
	return nil
}

// cmdBootstrap is `istio-sidecar-controller bootstrap`: the Nomad client reads NOMAD_ADDR, NOMAD_TOKEN (a
// management token) and the TLS variables as the nomad CLI does.
func cmdBootstrap(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bootstrap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg bootstrap.Config
	var apiIPs, etcdIPs ipList
	fs.StringVar(&cfg.Dir, "dir", "", "the operator's directory (created 0700): the PKI, the mesh root's key and admin.kubeconfig")
	fs.StringVar(&cfg.CRDs, "crds", "", "Istio's crd-all.gen.yaml (beside the pilot-discovery that build/istiod.sh prints)")
	fs.DurationVar(&cfg.Wait, "wait", 0, "how long to wait for the kube-apiserver Nomad service (0: finish the Nomad part and say what is pending)")
	fs.Var(&apiIPs, "apiserver-address", "IP,... the API server is dialled at, in its serving certificate beside 127.0.0.1 (unset: keep the certificate's)")
	fs.Var(&etcdIPs, "etcd-address", "IP,... of the etcd members, in etcd's server certificate beside 127.0.0.1 (unset: keep the certificate's)")
	fs.StringVar(&cfg.TrustDomain, "trust-domain", "cluster.local", "the mesh's trust domain (istiod's trustDomain)")
	fs.BoolVar(&cfg.AllowNoACLs, "insecure-no-acls", false, "run against an agent without ACLs, whose jobs can all read the keys written (a throwaway dev agent)")
	fs.BoolVar(&cfg.ReplacePKI, "replace-pki", false, "replace the trust anchors the Variables hold with -dir's: everything issued under the old ones stops verifying")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bootstrap: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if err := checkFlags(cfg); err != nil {
		fmt.Fprintf(stderr, "bootstrap: %v\n", err)
		return exitUsage
	}
	cfg.APIServerIPs, cfg.EtcdIPs = apiIPs, etcdIPs
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		fmt.Fprintf(stderr, "bootstrap: Nomad client (NOMAD_ADDR %q): %v\n", os.Getenv("NOMAD_ADDR"), err)
		return exitFailed
	}
	cfg.Nomad, cfg.Out = client, stdout
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out, err := bootstrap.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "bootstrap: %v\n", err)
		return exitFailed
	}
	if out.Pending != "" && cfg.Wait > 0 {
		// Asked to wait, a script must be able to tell it is not done.
		fmt.Fprintf(stderr, "bootstrap: not finished after -wait %s: %s\n", cfg.Wait, out.Pending)
		return exitFailed
	}
	if out.Pending != "" {
		fmt.Fprintf(stdout, "pending: %s\n", out.Pending)
		return exitOK
	}
	fmt.Fprintln(stdout, "bootstrap: done; next: nomad job run istiod.nomad.hcl, then the controller's job")
	return exitOK
}

// checkFlags refuses what Run would refuse later, naming the flag.
func checkFlags(cfg bootstrap.Config) error {
	switch {
	case cfg.Dir == "":
		return errors.New("-dir is required")
	case cfg.CRDs == "":
		return errors.New("-crds is required (crd-all.gen.yaml beside build/istiod.sh's pilot-discovery)")
	case cfg.Wait < 0:
		return fmt.Errorf("-wait %s: negative", cfg.Wait)
	case cfg.TrustDomain == "" || strings.ContainsAny(cfg.TrustDomain, "/ "):
		return fmt.Errorf("-trust-domain %q: not a trust domain", cfg.TrustDomain)
	}
	if fi, err := os.Stat(cfg.CRDs); err != nil || fi.IsDir() {
		return fmt.Errorf("-crds %s: not a readable file", cfg.CRDs)
	}
	return nil
}
