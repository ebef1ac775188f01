#!/usr/bin/env bash
# Builds etcd, the storage of Istio's API server, from the go.etcd.io/etcd/server/v3 module pinned in
# build/etcd/go.mod into a cache outside the clone. Prints the path of the binary; reuses a cached build of the
# same pinned version.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

here=$(cd "$(dirname "$0")/etcd" && pwd)
version=$(cd "$here" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
OUT="$CACHE/etcd-$version/etcd"

cached() { [ -x "$OUT" ] && "$OUT" --version 2>/dev/null | grep -qx "etcd Version: ${version#v}" && echo "$OUT"; }
cached && exit 0
build_lock "$(dirname "$OUT")"
cached && exit 0
# etcd's release builds are static too.
(cd "$here" && CGO_ENABLED=0 go build -trimpath -o "$OUT.tmp" go.etcd.io/etcd/server/v3) >&2
mv "$OUT.tmp" "$OUT"
echo "$OUT"
