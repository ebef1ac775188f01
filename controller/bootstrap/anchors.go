package bootstrap

import (
	"fmt"

	"github.com/hashicorp/nomad/api"
)

// trustAnchors are the Variables' items that everything else is verified against: replacing one invalidates
// every certificate and token issued under the old (workload certificates, ServiceAccount tokens, the control
// plane's own client certificates).
var trustAnchors = map[string][]string{
	EtcdVariable:       {"ca_cert"},
	APIServerVariable:  {"etcd_ca_cert", "client_ca_cert", "sa_public_key"},
	IstiodVariable:     {"apiserver_ca_cert", "root_cert"},
	ControllerVariable: {"apiserver_ca_cert", "root_cert"},
}

// checkAnchors refuses, before anything is written, a run whose -dir holds other trust anchors than the
// Variables already do: most likely the wrong directory, or an empty one that made a new PKI.
func (b *run) checkAnchors(want map[string]map[string]string) error {
	for _, path := range []string{EtcdVariable, APIServerVariable, IstiodVariable, ControllerVariable} {
		have, _, err := b.nomad.Variables().Peek(path, &api.QueryOptions{Namespace: Namespace})
		if err != nil {
			return fmt.Errorf("reading Variable %s@%s: %w", path, Namespace, err)
		}
		if have == nil {
			continue
		}
		for _, key := range trustAnchors[path] {
			if old := have.Items[key]; old != "" && old != want[path][key] {
				if b.cfg.ReplacePKI {
					b.logf("nomad: Variable %s: %s replaced (-replace-pki)", path, key)
					continue
				}
				return fmt.Errorf("Variable %s@%s holds another %s than -dir %s: writing it would replace a trust "+
					"anchor of the running control plane, and every certificate and token issued under it would stop "+
					"verifying. Is -dir the directory of the first bootstrap? To replace the PKI on purpose, pass -replace-pki",
					path, Namespace, key, b.cfg.Dir)
			}
		}
	}
	return nil
}
