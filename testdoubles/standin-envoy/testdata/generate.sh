#!/usr/bin/env bash
# Regenerates the bootstrap testdata from the real pilot-agent: it runs `pilot-agent proxy sidecar` in a
# throwaway network namespace with a fake Envoy that copies the bootstrap it is given (-c) and exits.
# Needs root. Usage: generate.sh <pilot-agent> ; writes bootstrap-default.json and bootstrap-custom-ports.json.
set -euo pipefail

agent=${1:?usage: $0 <pilot-agent>}
here=$(cd "$(dirname "$0")" && pwd)
istio=$(cd "$here/../../../build/istio" && go list -m -f '{{.Dir}}' istio.io/istio)
work=$(mktemp -d /tmp/standin-envoy-testdata.XXXXXX)
ns=standin-testdata-$$
trap 'ip netns del "$ns" 2>/dev/null || true; rm -rf "$work"' EXIT

ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" ip link add v0 type veth peer name v1
ip netns exec "$ns" ip addr add 10.211.0.2/24 dev v0
ip netns exec "$ns" ip link set v0 up

gen() { # <output> [extra PROXY_CONFIG lines] ; extra env comes from the caller
  local out=$1 extra=${2:-}
  rm -rf "$work/root" && mkdir -p "$work/root"/{var/run/secrets/istio,etc/certs,etc/istio/proxy,var/lib/istio/envoy}
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout /dev/null \
    -subj /CN=standin-testdata -days 1 -out "$work/root/var/run/secrets/istio/root-cert.pem" 2>/dev/null
  cp "$work/root/var/run/secrets/istio/root-cert.pem" "$work/root/etc/certs/root-cert.pem"
  # Relative paths (against the working directory, as pilot-agent resolves them) keep the output stable
  # and keep everything inside the throwaway directory.
  cat > "$work/root/fake-envoy" <<FAKE
#!/bin/sh
while [ \$# -gt 0 ]; do [ "\$1" = -c ] && cp "\$2" "$work/bootstrap.json"; shift; done
FAKE
  chmod +x "$work/root/fake-envoy"
  cp "$istio/tools/packaging/common/envoy_bootstrap.json" "$work/root/var/lib/istio/envoy/envoy_bootstrap_tmpl.json"
  (cd "$work/root" && PROXY_CONFIG="binaryPath: ./fake-envoy
configPath: ./etc/istio/proxy
discoveryAddress: 127.0.0.1:15012
$extra" POD_NAME=app-0 POD_NAMESPACE=default INSTANCE_IP=10.211.0.2 SERVICE_ACCOUNT=app \
    timeout 20 ip netns exec "$ns" "$agent" proxy sidecar >"$work/agent.log" 2>&1 || true)
  python3 -m json.tool --indent 2 "$work/bootstrap.json" > "$here/$out"
  echo "wrote $here/$out"
}

gen bootstrap-default.json
ENVOY_STATUS_PORT=16021 ENVOY_PROMETHEUS_PORT=16090 gen bootstrap-custom-ports.json "proxyAdminPort: 16000
statusPort: 16020"
