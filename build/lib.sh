# Sourced by the builders: the cache they share and what two of them would otherwise each write.
CACHE=${ISTIO_SIDECAR_CACHE:-/var/cache/istio-sidecar}

# build_lock DIR: one build into DIR at a time. `make -j`, a test suite and an operator may all ask for the same
# binary; the second waits for the first and then finds its result instead of writing the same files.
build_lock() {
  mkdir -p "$1"
  exec 9>"$1/.build.lock"
  flock 9
}

# istio_module HERE: the istio.io/istio module pinned in HERE/go.mod: sets istio_version, istio_src and
# istio_ldflags, the version stamp Istio's Makefile gives (VERSION file + "-dev"), so that `pilot-agent version`,
# istiod and the driver's fingerprint report one version instead of "unknown".
istio_module() {
  istio_version=$(cd "$1" && go list -m -f '{{.Version}}' istio.io/istio)
  # On a fresh module cache the module has no directory until it is downloaded.
  (cd "$1" && go mod download istio.io/istio) >&2
  istio_src=$(cd "$1" && go list -m -f '{{.Dir}}' istio.io/istio)
  [ -f "$istio_src/VERSION" ] || { echo "$0: istio.io/istio source not found (got '$istio_src')" >&2; exit 1; }
  local pkg=istio.io/istio/pkg/version
  istio_ldflags="-X $pkg.buildVersion=$(cat "$istio_src/VERSION")-dev -X $pkg.buildGitRevision=${istio_version##*-}"
  istio_ldflags+=" -X $pkg.buildStatus=Clean -X $pkg.buildTag=$istio_version"
}
