#!/usr/bin/env bash
# Builds the Nomad agent v1.6.3 from its MPL-2.0 module source into a cache outside the clone.
# v1.6.3 is the newest open-source Nomad; releases from 1.7 on are not open source and are never built here.
# Prints the path of the binary. Reuses the cached build when it is there and reports v1.6.3.
set -euo pipefail

NOMAD_VERSION=v1.6.3
# The api module at the v1.6.3 commit: the module zip lacks ./api, which its own go.mod replaces with a path.
NOMAD_API=v0.0.0-20231030125810-e0497bff1437
. "$(dirname "$0")/lib.sh"
OUT="$CACHE/nomad-$NOMAD_VERSION/nomad"

cached() { [ -x "$OUT" ] && "$OUT" version 2>/dev/null | grep -q "Nomad ${NOMAD_VERSION}\b" && echo "$OUT"; }
cached && exit 0
build_lock "$(dirname "$OUT")"
cached && exit 0
work=$(mktemp -d "$CACHE/nomad-src.XXXXXX")
trap 'rm -rf "$work"' EXIT

src=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/hashicorp/nomad@$NOMAD_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$src" ] || { echo "nomad.sh: module source for $NOMAD_VERSION not found" >&2; exit 1; }
cp -r "$src/." "$work/nomad"
chmod -R u+w "$work/nomad"
cd "$work/nomad"
go mod edit -replace "github.com/hashicorp/nomad/api=github.com/hashicorp/nomad/api@$NOMAD_API"
GOFLAGS=-mod=mod go mod download github.com/hashicorp/nomad/api >&2
mkdir -p "$(dirname "$OUT")"
GOFLAGS=-mod=mod CGO_ENABLED=1 go build -trimpath -o "$OUT.tmp" . >&2
mv "$OUT.tmp" "$OUT"
"$OUT" version >&2
echo "$OUT"
