package bootstrap

import (
	"context"
	"errors"
	"fmt"

	"github.com/istio-sidecar/istio-sidecar/controller/pki"
)

var errNotRegistered = errors.New("not registered")

// waitAPIServer returns the API server's address, waiting up to cfg.Wait for its Nomad service; "" when it is
// not registered by then.
func (b *run) waitAPIServer(ctx context.Context) (string, error) {
	addr, err := b.apiServerAddress()
	if err != nil || addr != "" || b.cfg.Wait <= 0 {
		return addr, err
	}
	b.logf("nomad: waiting up to %s for service %s@%s", b.cfg.Wait, APIServerService, Namespace)
	err = until(ctx, b.cfg.Wait, "Nomad service "+APIServerService, func() error {
		a, err := b.apiServerAddress()
		if err == nil && a == "" {
			return errNotRegistered
		}
		addr = a
		return err
	})
	if errors.Is(err, errNotRegistered) {
		return "", nil
	}
	return addr, err
}

// apiServerSide applies, as the admin, Istio's CRDs, the namespaces and the RBAC, waits until the controller's
// admission policy holds, and writes the admin kubeconfig.
func (b *run) apiServerSide(ctx context.Context, addr string) error {
	admin, err := newKube(restConfig(b.pki, addr, pki.AdminCert, pki.AdminKey))
	if err != nil {
		return err
	}
	b.logf("apiserver: %s (%s)", addr, pki.APIServerName)
	if err := until(ctx, max(b.cfg.Wait, apiServerReady), "the API server at "+addr, func() error {
		_, err := admin.typed.Discovery().ServerVersion()
		return err
	}); err != nil {
		return err
	}
	if err := admin.apply(ctx, b.crds); err != nil {
		return err
	}
	if err := until(ctx, apiServerReady, "Istio's CRDs established", func() error { return admin.established(ctx, b.crds) }); err != nil {
		return err
	}
	b.logf("apiserver: %d CRDs applied and established", len(b.crds))
	rbacObjs, err := rbacObjects()
	if err != nil {
		return err
	}
	if err := admin.apply(ctx, append(namespaces(), rbacObjs...)); err != nil {
		return err
	}
	b.logf("apiserver: namespace %s, %s=true on default, RBAC of istiod and the controller applied", Namespace, MeshLabel)
	controller, err := newKube(restConfig(b.pki, addr, pki.ControllerCert, pki.ControllerKey))
	if err != nil {
		return err
	}
	if err := until(ctx, apiServerReady, "the controller's admission policy", func() error { return policyEnforced(ctx, controller) }); err != nil {
		return err
	}
	b.logf("apiserver: policy %s enforced", scopePolicy)
	if err := b.writeKubeconfig(addr); err != nil {
		return fmt.Errorf("writing %s: %w", AdminKubeconfig, err)
	}
	return nil
}
