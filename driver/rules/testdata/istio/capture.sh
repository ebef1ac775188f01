#!/bin/bash
# Records Istio's own ruleset for one setting (run as root).
# usage: capture.sh NAME v4|v6 [VAR=value ...] -- istio-iptables flags...
# VAR=value pairs go into istio-iptables' environment: the options it reads from the environment only, such as
# ISTIO_OUTBOUND_OWNER_GROUPS. On success it writes NAME.v4.save, and for v6 NAME.v6.save too (iptables-save
# output, comments stripped), in the current directory; when Istio refuses the setting it writes NAME.refused
# instead: its exit status and its error log lines without their timestamps.
set -euo pipefail
PA=${PILOT_AGENT:-/var/cache/istio-sidecar/pilot-agent-v0.0.0-20260827124520-eed52ebb66ad/pilot-agent}
name=$1 fam=$2
shift 2
vars=()
while [ "$1" != -- ]; do vars+=("$1"); shift; done
shift
ns=isc-cap-$$
trap 'ip netns del "$ns" 2>/dev/null || true; rm -rf "/etc/netns/$ns"' EXIT
ip netns add "$ns"
# ip netns exec bind-mounts these over /etc: the nameservers DNS capture reads, and the groups iptables resolves
# owner-group names with (Istio passes names through to iptables).
mkdir -p "/etc/netns/$ns"
printf 'nameserver 10.212.0.53\nnameserver 10.212.1.53\n' >"/etc/netns/$ns/resolv.conf"
printf 'root:x:0:\njava:x:2001:\nftp:x:2002:\n' >"/etc/netns/$ns/group"
ip -n "$ns" link add d0 type veth peer name d1
ip -n "$ns" link set d1 up
ip -n "$ns" link set d0 up
ip -n "$ns" link set lo up
ip -n "$ns" addr add 10.212.0.2/24 dev d0
if [ "$fam" = v6 ]; then ip -n "$ns" addr add fd00:212::2/64 dev d0 nodad; fi
rm -f "$name.v4.save" "$name.v6.save" "$name.refused"
status=0
ip netns exec "$ns" env "${vars[@]}" "$PA" istio-iptables "$@" >"$name.log" 2>&1 || status=$?
if [ "$status" != 0 ]; then
	{
		echo "exit $status"
		sed -nE 's/^[0-9TZ:.-]+\terror\t/error: /p' "$name.log"
	} >"$name.refused"
else
	ip netns exec "$ns" iptables-save 2>/dev/null | grep -v '^#' >"$name.v4.save"
	if [ "$fam" = v6 ]; then ip netns exec "$ns" ip6tables-save 2>/dev/null | grep -v '^#' >"$name.v6.save"; fi
fi
rm -f "$name.log"
