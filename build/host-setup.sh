#!/usr/bin/env bash
# Installs what the plugin, its tests and the demo need on a fresh Debian machine, as root: iptables (both
# backends), iproute2, Debian's CNI plugins (/usr/lib/cni, for bridge networking), and the proxy user that
# pilot-agent and Envoy run as (UID/GID 1337, Istio's default; Nomad's executor switches users by name).
# Idempotent: it changes nothing that is already in place.
set -euo pipefail

need=()
command -v iptables-restore >/dev/null || need+=(iptables)
command -v ip >/dev/null || need+=(iproute2)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
if [ ${#need[@]} -gt 0 ]; then
  echo "host-setup: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! getent passwd 1337 >/dev/null; then
  getent group 1337 >/dev/null || groupadd --system --gid 1337 istio-proxy
  useradd --system --uid 1337 --gid 1337 --no-create-home --shell /usr/sbin/nologin istio-proxy
  echo "host-setup: created user istio-proxy (1337:1337)" >&2
fi
