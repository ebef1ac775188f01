#!/usr/bin/env bash
# What each builder costs, printed as a table: warm (the binary is in the cache: the check alone), with an
# empty project cache but Go's build cache as it is (a version bump of one part), and with both empty (a fresh
# machine, less the module downloads, which depend on the network and are not counted: they run first).
# Each cold build runs in throwaway caches; the real ones are not touched.
set -euo pipefail
cd "$(dirname "$0")"
read -ra builders <<<"${BUILDERS:-nomad pilot-agent istiod etcd kube-apiserver}"
scratch=$(mktemp -d)
trap 'chmod -R u+w "$scratch" 2>/dev/null; rm -rf "$scratch"' EXIT

seconds() { # seconds CMD...: wall time of CMD, its output discarded
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null 2>"$scratch/err" || { cat "$scratch/err" >&2; return 1; }
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }'
}

printf '%-16s %10s %22s %22s\n' builder warm "cold (Go cache warm)" "cold (Go cache empty)"
for b in "${builders[@]}"; do
  ./"$b".sh >/dev/null # the real cache holds it, and every module it needs is downloaded
  warm=$(seconds ./"$b".sh)
  part=$(ISTIO_SIDECAR_CACHE="$scratch/$b-part" seconds ./"$b".sh)
  full=$(ISTIO_SIDECAR_CACHE="$scratch/$b-full" GOCACHE="$scratch/$b-gocache" seconds ./"$b".sh)
  printf '%-16s %9ss %21ss %21ss\n' "$b" "$warm" "$part" "$full"
  rm -rf "$scratch/$b-part" "$scratch/$b-full" "$scratch/$b-gocache"
done
