#!/usr/bin/env bash
# Builds etcd, the storage of Istio's API server, from the go.etcd.io/etcd/server/v3 module pinned in
# build/etcd/go.mod into a cache outside the clone. Prints the path of the binary; reuses a cached build of the
# same pinned version.
set -euo pipefail

here=$(cd "$(dirname "$0")/etcd" && pwd)
CACHE=${ISTIO_SIDECAR_CACHE:-/var/cache/istio-sidecar}
version=$(cd "$here" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
OUT="$CACHE/etcd-$version/etcd"

if [ -x "$OUT" ] && "$OUT" --version 2>/dev/null | grep -qx "etcd Version: ${version#v}"; then
  echo "$OUT"
  exit 0
fi
mkdir -p "$(dirname "$OUT")"
# etcd's release builds are static too.
(cd "$here" && CGO_ENABLED=0 go build -trimpath -o "$OUT.tmp" go.etcd.io/etcd/server/v3) >&2
mv "$OUT.tmp" "$OUT"
echo "$OUT"
