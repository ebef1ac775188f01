package bootstrap

import (
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/hashicorp/nomad/api"

	"github.com/istio-sidecar/istio-sidecar/controller/nomaderr"
)

// Namespace is the Nomad namespace of the control plane's jobs and of their Variables.
const Namespace = "istio-system"

// ensureNamespace creates the control plane's Nomad namespace when it does not exist.
func (b *run) ensureNamespace() error {
	_, _, err := b.nomad.Namespaces().Info(Namespace, nil)
	if err == nil {
		b.logf("nomad: namespace %s exists", Namespace)
		return nil
	}
	if nomaderr.Status(err) == 403 {
		return fmt.Errorf("reading Nomad namespace %s: %w: bootstrap needs a management token in NOMAD_TOKEN", Namespace, err)
	}
	if nomaderr.Status(err) != 404 && !strings.Contains(err.Error(), "not found") {
		return fmt.Errorf("reading Nomad namespace %s: %w", Namespace, err)
	}
	ns := &api.Namespace{Name: Namespace, Description: "the istio-sidecar control plane: etcd, kube-apiserver, istiod, the controller"}
	if _, err := b.nomad.Namespaces().Register(ns, nil); err != nil {
		return fmt.Errorf("creating Nomad namespace %s: %w", Namespace, err)
	}
	b.logf("nomad: namespace %s created", Namespace)
	return nil
}

// putVariable writes a Variable of the control plane's namespace when its items differ from want, with
// check-and-set on the index it read: a change made meanwhile by someone else fails this run instead of being
// overwritten.
func (b *run) putVariable(path string, want map[string]string) error {
	q := &api.QueryOptions{Namespace: Namespace}
	have, _, err := b.nomad.Variables().Peek(path, q)
	if err != nil {
		return fmt.Errorf("reading Variable %s@%s: %w", path, Namespace, err)
	}
	v := &api.Variable{Namespace: Namespace, Path: path, Items: want}
	if have != nil {
		if maps.Equal(map[string]string(have.Items), want) {
			b.logf("nomad: Variable %s unchanged", path)
			return nil
		}
		v.ModifyIndex = have.ModifyIndex
	}
	if _, _, err := b.nomad.Variables().CheckedUpdate(v, &api.WriteOptions{Namespace: Namespace}); err != nil {
		var cas api.ErrCASConflict
		if errors.As(err, &cas) {
			return fmt.Errorf("Variable %s@%s changed while bootstrap ran (index %d, now %d): run bootstrap again",
				path, Namespace, cas.CheckIndex, cas.Conflict.ModifyIndex)
		}
		return fmt.Errorf("writing Variable %s@%s: %w", path, Namespace, err)
	}
	b.logf("nomad: Variable %s written", path)
	return nil
}
