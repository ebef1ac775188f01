#!/usr/bin/env bash
# Builds Istio's real pilot-agent from the istio.io/istio module pinned in build/istio/go.mod into a cache
# outside the clone. Prints the path of the binary; reuses a cached build of the same pinned version.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

here=$(cd "$(dirname "$0")/istio" && pwd)
version=$(cd "$here" && go list -m -f '{{.Version}}' istio.io/istio)
OUT="$CACHE/pilot-agent-$version/pilot-agent"
# pilot-agent renders Envoy's bootstrap from this template; Istio's packages install it at
# /var/lib/istio/envoy/envoy_bootstrap_tmpl.json, the driver's default bootstrap_template_path.
TEMPLATE="$(dirname "$OUT")/envoy_bootstrap_tmpl.json"

# A build from an older revision of this script lacks the version stamp: it does not count.
cached() { [ -x "$OUT" ] && [ -f "$TEMPLATE" ] && ! "$OUT" version -s 2>/dev/null | grep -q unknown && echo "$OUT"; }
cached && exit 0
build_lock "$(dirname "$OUT")"
cached && exit 0
istio_module "$here"
# Istio's own release builds are static; a static binary also runs as the proxy user from any directory.
(cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags "$istio_ldflags" -o "$OUT.tmp" istio.io/istio/pilot/cmd/pilot-agent) >&2
install -m 0644 "$istio_src/tools/packaging/common/envoy_bootstrap.json" "$TEMPLATE"
mv "$OUT.tmp" "$OUT"
echo "$OUT"
