// Package bootstrap is the operator's one command for the control plane, safe to run again at any time: it
// keeps the PKI in a local directory (controller/pki), creates the Nomad namespace istio-system, the
// controller's ACL policy and token, and the Variables the control-plane jobs read; once the API server's Nomad
// service is registered, it applies Istio's CRDs, the namespaces and the RBAC, and writes an admin kubeconfig.
// Every step compares before it writes, so a second run changes nothing and a run killed halfway is completed
// by the next.
package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/hashicorp/nomad/api"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/istio-sidecar/istio-sidecar/controller/pki"
)

// Config is one bootstrap run's input.
type Config struct {
	// Dir is the operator's directory: the PKI (the mesh root's key only here) and admin.kubeconfig.
	Dir string
	// CRDs is Istio's crd-all.gen.yaml.
	CRDs string
	// TrustDomain, APIServerIPs and EtcdIPs go into the certificates (pki.Options).
	TrustDomain           string
	APIServerIPs, EtcdIPs []net.IP
	// Wait is how long to wait for the API server's Nomad service; 0 means not at all.
	Wait time.Duration
	// Nomad is a client with a management token.
	Nomad *api.Client
	// AllowNoACLs lets a run on an agent without ACLs write the keys into Variables that every job can then
	// read: a throwaway dev agent only.
	AllowNoACLs bool
	// ReplacePKI lets a run replace trust anchors that the Variables already hold with -dir's (a new mesh
	// root, API server CA, service-account key or etcd CA): everything issued under the old ones stops
	// verifying. Without it a differing anchor is refused, as a wrong -dir most likely made it.
	ReplacePKI bool
	// Out gets one line per step.
	Out io.Writer
}

// Outcome says what a run left for later.
type Outcome struct {
	// Pending is empty when everything is done, else what remains and what to run.
	Pending string
}

// AdminKubeconfig is the operator's kubeconfig in Dir (system:masters).
const AdminKubeconfig = "admin.kubeconfig"

// apiServerReady bounds the wait for a registered API server to answer (a restart takes seconds).
const apiServerReady = time.Minute

type run struct {
	cfg   Config
	nomad *api.Client
	pki   *pki.PKI
	crds  []*unstructured.Unstructured
}

func (b *run) logf(format string, args ...any) { fmt.Fprintf(b.cfg.Out, format+"\n", args...) }

// Run bootstraps; see the package comment.
func Run(ctx context.Context, cfg Config) (Outcome, error) {
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	b := &run{cfg: cfg, nomad: cfg.Nomad}
	if err := b.validate(); err != nil {
		return Outcome{}, err
	}
	p, err := pki.Ensure(cfg.Dir, pki.Options{TrustDomain: cfg.TrustDomain, APIServerIPs: cfg.APIServerIPs, EtcdIPs: cfg.EtcdIPs})
	if err != nil {
		return Outcome{}, err
	}
	b.pki = p
	for _, f := range p.Made {
		b.logf("pki: %s made", f)
	}
	b.logf("pki: %s up to date", cfg.Dir)
	if err := b.nomadSide(); err != nil {
		return Outcome{}, err
	}
	addr, err := b.waitAPIServer(ctx)
	if err != nil {
		return Outcome{}, err
	}
	if addr == "" {
		return Outcome{Pending: fmt.Sprintf("the API server: Nomad service %s is not registered in namespace %s. "+
			"Run `nomad job run etcd.nomad.hcl` and `nomad job run kube-apiserver.nomad.hcl` "+
			"(example/control-plane/), then run bootstrap again (or with -wait 5m)", APIServerService, Namespace)}, nil
	}
	return Outcome{}, b.apiServerSide(ctx, addr)
}

// validate reads the inputs before anything is written: a bad one leaves nothing half-done.
func (b *run) validate() error {
	c := b.cfg
	switch {
	case c.Dir == "":
		return errors.New("-dir: empty: the operator's directory for keys and the admin kubeconfig is required")
	case c.TrustDomain == "":
		return errors.New("-trust-domain: empty")
	case c.CRDs == "":
		return errors.New("-crds: empty: Istio's crd-all.gen.yaml (beside the pilot-discovery build/istiod.sh prints) is required")
	case c.Nomad == nil:
		return errors.New("no Nomad client")
	}
	data, err := os.ReadFile(c.CRDs)
	if err != nil {
		return fmt.Errorf("-crds %s: %w", c.CRDs, err)
	}
	b.crds, err = decodeObjects(c.CRDs, data)
	if err != nil {
		return fmt.Errorf("-crds %s: %w", c.CRDs, err)
	}
	for _, o := range b.crds {
		if o.GetKind() != "CustomResourceDefinition" {
			return fmt.Errorf("-crds %s: %s %s is no CustomResourceDefinition", c.CRDs, o.GetKind(), o.GetName())
		}
	}
	if len(b.crds) == 0 {
		return fmt.Errorf("-crds %s: no CustomResourceDefinition in it", c.CRDs)
	}
	return nil
}

// nomadSide is the controller's policy and token, the namespace, and the Variables, whose trust anchors are
// compared with -dir's before any is written.
func (b *run) nomadSide() error {
	token, err := b.controllerToken()
	if err != nil {
		return err
	}
	if err := b.ensureNamespace(); err != nil {
		return err
	}
	vars := variables(b.pki, token)
	if err := b.checkAnchors(vars); err != nil {
		return err
	}
	for _, path := range []string{EtcdVariable, APIServerVariable, IstiodVariable, ControllerVariable} {
		if err := b.putVariable(path, vars[path]); err != nil {
			return err
		}
	}
	return nil
}

// controllerToken is the controller's Nomad token, "" when the agent has no ACLs.
func (b *run) controllerToken() (string, error) {
	err := b.ensurePolicy()
	if errors.Is(err, errACLDisabled) {
		if !b.cfg.AllowNoACLs {
			return "", errors.New("nomad: ACLs are disabled on this agent: every job's templates could read every " +
				"Variable, the control plane's keys included. Enable ACLs (acl { enabled = true }, nomad acl bootstrap), " +
				"or pass -insecure-no-acls on a throwaway dev agent")
		}
		b.logf("nomad: ACLs are disabled on this agent (-insecure-no-acls): no policy or token for the controller " +
			"(nomad_token empty); every job's templates can read every Variable, the control plane's keys included")
		return "", nil
	}
	if err != nil {
		return "", err
	}
	current := ""
	v, _, err := b.nomad.Variables().Peek(ControllerVariable, &api.QueryOptions{Namespace: Namespace})
	if err != nil {
		return "", fmt.Errorf("reading Variable %s@%s: %w", ControllerVariable, Namespace, err)
	}
	if v != nil {
		current = v.Items["nomad_token"]
	}
	return b.ensureToken(current)
}
