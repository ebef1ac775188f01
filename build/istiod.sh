#!/usr/bin/env bash
# Builds istiod (Istio's pilot-discovery) from the istio.io/istio module pinned in build/istio/go.mod, the same
# module and version as pilot-agent, into a cache outside the clone. Beside it goes Istio's CRDs file from the
# same module (crd-all.gen.yaml), which the control plane's bootstrap applies to the API server.
# Prints the path of the binary; reuses a cached build of the same pinned version.
set -euo pipefail

here=$(cd "$(dirname "$0")/istio" && pwd)
CACHE=${ISTIO_SIDECAR_CACHE:-/var/cache/istio-sidecar}
version=$(cd "$here" && go list -m -f '{{.Version}}' istio.io/istio)
OUT="$CACHE/istiod-$version/pilot-discovery"
CRDS="$(dirname "$OUT")/crd-all.gen.yaml"

if [ -x "$OUT" ] && [ -f "$CRDS" ]; then
  echo "$OUT"
  exit 0
fi
mkdir -p "$(dirname "$OUT")"
# On a fresh module cache the module has no directory until it is downloaded.
(cd "$here" && go mod download istio.io/istio) >&2
src=$(cd "$here" && go list -m -f '{{.Dir}}' istio.io/istio)
[ -f "$src/VERSION" ] || { echo "istiod.sh: istio.io/istio source not found (got '$src')" >&2; exit 1; }
# The same stamp as pilot-agent's (build/pilot-agent.sh): istiod and its sidecars report one version.
commit=${version##*-}
pkg=istio.io/istio/pkg/version
ldflags="-X $pkg.buildVersion=$(cat "$src/VERSION")-dev -X $pkg.buildGitRevision=$commit -X $pkg.buildStatus=Clean -X $pkg.buildTag=$version"
(cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$OUT.tmp" istio.io/istio/pilot/cmd/pilot-discovery) >&2
install -m 0644 "$src/manifests/charts/base/files/crd-all.gen.yaml" "$CRDS.tmp"
mv "$CRDS.tmp" "$CRDS"
mv "$OUT.tmp" "$OUT"
echo "$OUT"
