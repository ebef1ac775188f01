// Package variables writes and removes the Nomad Variable of each meshed group, nomad/jobs/<job>/<group> in
// the job's namespace: the one path Nomad's workload identity lets only that group's tasks read.
package variables

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"github.com/hashicorp/nomad/api"
)

// The Variable's keys, as the jobspecs' templates read them.
const (
	KeyToken          = "istio_token"
	KeyRootCert       = "root_cert"
	KeyNamespace      = "namespace"
	KeyServiceAccount = "service_account"
	KeyExpires        = "expires"
	KeyRefused        = "refused"
	// KeyDiscoveryAddress is istiod's address as the controller's job found it in Nomad's catalog, which a
	// meshed group's template cannot read (its services are in istio-system); absent when it was not given.
	KeyDiscoveryAddress = "discovery_address"
	// KeyManagedBy, always ManagedBy, marks a Variable as the controller's: a job owner's Variable that happens
	// to hold only the keys above is still never taken for one.
	KeyManagedBy = "managed_by"
	ManagedBy    = "istio-sidecar-controller"
)

// Prefix is where the groups' Variables live.
const Prefix = "nomad/jobs/"

// Store reads and writes the Variables through Nomad's API with the controller's token.
type Store struct {
	Nomad *api.Client
}

// Write stores items, marked as the controller's, at path in namespace ns unless prev already holds exactly
// them, with check-and-set on prev (nil: the Variable must not exist yet), so a concurrent writer is noticed
// rather than overwritten.
func (s *Store) Write(ctx context.Context, ns, path string, items map[string]string, prev *api.Variable) (*api.Variable, error) {
	items = maps.Clone(items)
	items[KeyManagedBy] = ManagedBy
	if prev != nil && maps.Equal(map[string]string(prev.Items), items) {
		return prev, nil
	}
	v := &api.Variable{Namespace: ns, Path: path, Items: api.VariableItems(items)}
	if prev != nil {
		v.ModifyIndex = prev.ModifyIndex
	}
	got, _, err := s.Nomad.Variables().CheckedUpdate(v, (&api.WriteOptions{Namespace: ns}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("writing variable %s in namespace %s: %w", path, ns, err)
	}
	return got, nil
}

// Read returns the Variable at path in ns, nil when there is none.
func (s *Store) Read(ctx context.Context, ns, path string) (*api.Variable, error) {
	v, _, err := s.Nomad.Variables().Peek(path, (&api.QueryOptions{Namespace: ns}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("reading variable %s in namespace %s: %w", path, ns, err)
	}
	return v, nil
}

// Delete removes v unless it changed since it was read.
func (s *Store) Delete(ctx context.Context, v *api.Variable) error {
	_, err := s.Nomad.Variables().CheckedDelete(v.Path, v.ModifyIndex, (&api.WriteOptions{Namespace: v.Namespace}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("deleting variable %s in namespace %s: %w", v.Path, v.Namespace, err)
	}
	return nil
}

// List returns every group Variable the controller wrote, in all the namespaces its token may list.
func (s *Store) List(ctx context.Context) ([]*api.Variable, error) {
	metas, _, err := s.Nomad.Variables().PrefixList(Prefix, (&api.QueryOptions{Namespace: "*"}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("listing variables under %s: %w", Prefix, err)
	}
	var out []*api.Variable
	for _, m := range metas {
		if _, _, ok := Split(m.Path); !ok {
			continue
		}
		v, err := s.Read(ctx, m.Namespace, m.Path)
		if err != nil {
			return nil, err
		}
		if v != nil && Ours(v) {
			out = append(out, v)
		}
	}
	return out, nil
}

// Split reads job and group from a group Variable's path. A job ID may hold '/'; a group name may too, but the
// controller writes no Variable for such a group (plan.Key.Unwritable), so the last '/' separates them.
func Split(path string) (job, group string, ok bool) {
	rest, found := strings.CutPrefix(path, Prefix)
	i := strings.LastIndexByte(rest, '/')
	if !found || i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// Ours tells a Variable the controller wrote from one a job's owner keeps at the same path: it carries the
// controller's marker and only the controller's keys. The controller never overwrites or deletes any other.
// Anyone who may write Variables in the namespace can copy the marker: what such a Variable says of a token is
// checked before it is acted on.
func Ours(v *api.Variable) bool {
	if v.Items[KeyManagedBy] != ManagedBy || v.Items[KeyNamespace] == "" || v.Items[KeyServiceAccount] == "" {
		return false
	}
	for k := range v.Items {
		switch k {
		case KeyToken, KeyRootCert, KeyNamespace, KeyServiceAccount, KeyExpires, KeyRefused, KeyManagedBy, KeyDiscoveryAddress:
		default:
			return false
		}
	}
	return true
}
