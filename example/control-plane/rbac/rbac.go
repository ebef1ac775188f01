// Package rbac embeds the API-server RBAC of istiod and of the controller, so that the bootstrap applies exactly
// the files beside it, which the README documents, and its binary needs no checkout.
package rbac

import "embed"

// Files are istiod.yaml and controller.yaml.
//
//go:embed *.yaml
var Files embed.FS
