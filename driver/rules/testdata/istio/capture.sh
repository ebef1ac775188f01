#!/bin/bash
# Recaptures Istio's own ruleset for one setting (run as root).
# usage: capture.sh NAME v4|v6 -- istio-iptables flags...
# Writes NAME.v4.save and NAME.v6.save (iptables-save output, comments stripped) in the current directory.
set -euo pipefail
PA=${PILOT_AGENT:-/var/cache/istio-sidecar/pilot-agent-v0.0.0-20260827124520-eed52ebb66ad/pilot-agent}
name=$1 fam=$2; shift 3
ns=isc-cap-$$
trap 'ip netns del "$ns" 2>/dev/null || true; rm -rf "/etc/netns/$ns"' EXIT
ip netns add "$ns"
mkdir -p "/etc/netns/$ns"
printf 'nameserver 10.212.0.53\nnameserver 10.212.1.53\n' >"/etc/netns/$ns/resolv.conf"
ip -n "$ns" link add d0 type veth peer name d1
ip -n "$ns" link set d1 up
ip -n "$ns" link set d0 up
ip -n "$ns" link set lo up
ip -n "$ns" addr add 10.212.0.2/24 dev d0
if [ "$fam" = v6 ]; then ip -n "$ns" addr add fd00:212::2/64 dev d0 nodad; fi
ip netns exec "$ns" "$PA" istio-iptables "$@" >"$name.log" 2>&1
ip netns exec "$ns" iptables-save 2>/dev/null | grep -v '^#' >"$name.v4.save"
ip netns exec "$ns" ip6tables-save 2>/dev/null | grep -v '^#' >"$name.v6.save"
rm -f "$name.log"
