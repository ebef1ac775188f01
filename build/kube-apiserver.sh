#!/usr/bin/env bash
# Builds Kubernetes' kube-apiserver, Istio's config store here, and kubectl from the k8s.io/kubernetes module
# pinned in build/kube-apiserver/go.mod into a cache outside the clone. Prints the path of kube-apiserver;
# kubectl is beside it. Reuses a cached build of the same pinned version.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

here=$(cd "$(dirname "$0")/kube-apiserver" && pwd)
version=$(cd "$here" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
dir="$CACHE/kube-apiserver-$version"
OUT="$dir/kube-apiserver"

cached() {
  [ -x "$OUT" ] && [ -x "$dir/kubectl" ] && "$OUT" --version 2>/dev/null | grep -qx "Kubernetes $version" && echo "$OUT"
}
cached && exit 0
build_lock "$dir"
cached && exit 0
# Stamp the version as Kubernetes' own build does (hack/lib/version.sh): /version reports it, and clients such
# as istiod gate features on the server's minor version.
IFS=. read -r major minor _ <<<"${version#v}"
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
# Kubernetes' release binaries are static too.
for cmd in kube-apiserver kubectl; do
  (cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$dir/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd") >&2
done
mv "$dir/kubectl.tmp" "$dir/kubectl"
mv "$OUT.tmp" "$OUT"
echo "$OUT"
