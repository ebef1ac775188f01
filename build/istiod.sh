#!/usr/bin/env bash
# Builds istiod (Istio's pilot-discovery) from the istio.io/istio module pinned in build/istio/go.mod, the same
# module and version as pilot-agent, into a cache outside the clone. Beside it goes Istio's CRDs file from the
# same module (crd-all.gen.yaml), which the control plane's bootstrap applies to the API server.
# Prints the path of the binary; reuses a cached build of the same pinned version.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

here=$(cd "$(dirname "$0")/istio" && pwd)
version=$(cd "$here" && go list -m -f '{{.Version}}' istio.io/istio)
OUT="$CACHE/istiod-$version/pilot-discovery"
CRDS="$(dirname "$OUT")/crd-all.gen.yaml"

cached() { [ -x "$OUT" ] && [ -f "$CRDS" ] && echo "$OUT"; }
cached && exit 0
build_lock "$(dirname "$OUT")"
cached && exit 0
istio_module "$here"
(cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags "$istio_ldflags" -o "$OUT.tmp" istio.io/istio/pilot/cmd/pilot-discovery) >&2
install -m 0644 "$istio_src/manifests/charts/base/files/crd-all.gen.yaml" "$CRDS.tmp"
mv "$CRDS.tmp" "$CRDS"
mv "$OUT.tmp" "$OUT"
echo "$OUT"
