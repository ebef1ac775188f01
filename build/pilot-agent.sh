#!/usr/bin/env bash
# Builds Istio's real pilot-agent from the istio.io/istio module pinned in build/istio/go.mod into a cache
# outside the clone. Prints the path of the binary; reuses a cached build of the same pinned version.
set -euo pipefail

here=$(cd "$(dirname "$0")/istio" && pwd)
CACHE=${ISTIO_SIDECAR_CACHE:-/var/cache/istio-sidecar}
version=$(cd "$here" && go list -m -f '{{.Version}}' istio.io/istio)
OUT="$CACHE/pilot-agent-$version/pilot-agent"
# A build from an older revision of this script lacks the version stamp: rebuild it.
if [ -x "$OUT" ] && "$OUT" version -s 2>/dev/null | grep -q unknown; then rm -f "$OUT"; fi

# pilot-agent renders Envoy's bootstrap from this template; Istio's packages install it at
# /var/lib/istio/envoy/envoy_bootstrap_tmpl.json, the driver's default bootstrap_template_path.
TEMPLATE="$(dirname "$OUT")/envoy_bootstrap_tmpl.json"

if [ -x "$OUT" ] && [ -f "$TEMPLATE" ]; then
  echo "$OUT"
  exit 0
fi
mkdir -p "$(dirname "$OUT")"
# On a fresh module cache the module has no directory until it is downloaded.
(cd "$here" && go mod download istio.io/istio) >&2
src=$(cd "$here" && go list -m -f '{{.Dir}}' istio.io/istio)
[ -f "$src/VERSION" ] || { echo "pilot-agent.sh: istio.io/istio source not found (got '$src')" >&2; exit 1; }
# Stamp the version as Istio's Makefile does (VERSION file + "-dev"), so that `pilot-agent version` and the
# driver's fingerprint report it instead of "unknown".
commit=${version##*-}
pkg=istio.io/istio/pkg/version
ldflags="-X $pkg.buildVersion=$(cat "$src/VERSION")-dev -X $pkg.buildGitRevision=$commit -X $pkg.buildStatus=Clean -X $pkg.buildTag=$version"
# Istio's own release builds are static; a static binary also runs as the proxy user from any directory.
(cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$OUT.tmp" istio.io/istio/pilot/cmd/pilot-agent) >&2
mv "$OUT.tmp" "$OUT"
install -m 0644 "$src/tools/packaging/common/envoy_bootstrap.json" "$TEMPLATE"
echo "$OUT"
