package main

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"k8s.io/client-go/dynamic"

	"github.com/istio-sidecar/istio-sidecar/controller/identity"
	"github.com/istio-sidecar/istio-sidecar/controller/registry"
)

// registrationFlags are `run`'s flags for registration (Nomad's allocations and services as the mesh's
// WorkloadEntries and ServiceEntries).
type registrationFlags struct {
	off           bool
	domain        string
	checkInterval time.Duration
}

func (r *registrationFlags) add(fs *flag.FlagSet) {
	fs.BoolVar(&r.off, "no-registration", false, "write no WorkloadEntries or ServiceEntries (identity only)")
	fs.StringVar(&r.domain, "domain", "cluster.local", "the mesh's DNS `SUFFIX`: services are <service>.<namespace>.svc.SUFFIX")
	fs.DurationVar(&r.checkInterval, "check-interval", 5*time.Second, "read the Nomad checks of meshed allocations this often")
}

// check rejects bad values before anything is contacted.
func (r *registrationFlags) check() error {
	if r.checkInterval <= 0 {
		return fmt.Errorf("-check-interval %s: must be more than 0", r.checkInterval)
	}
	if r.domain == "" || strings.Trim(r.domain, ".") != r.domain || strings.ContainsAny(r.domain, " /:") {
		return fmt.Errorf("-domain %q: want a DNS suffix such as cluster.local", r.domain)
	}
	return nil
}

// registration is the registration controller, nil with -no-registration; it shares the identity side's
// Nomad client, API server identity, namespace policy and resync period.
func (f *runFlags) registration(cfg identity.Config) (*registry.Controller, error) {
	if f.reg.off {
		return nil, nil
	}
	dyn, err := dynamic.NewForConfig(f.restConfig)
	if err != nil {
		return nil, fmt.Errorf("API server client: %w", err)
	}
	c, err := registry.New(registry.Config{Nomad: cfg.Nomad, Dynamic: dyn, Kube: cfg.Kube, Domain: f.reg.domain,
		Policy: cfg.Policy, Resync: cfg.Resync, CheckInterval: f.reg.checkInterval, Log: cfg.Log.Named("registration")})
	if err != nil {
		return nil, err
	}
	return c, nil
}
