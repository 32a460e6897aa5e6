#!/usr/bin/env bash
# Fetches Argo Workflows' own CRDs (the "full" ones, with complete openAPIV3Schema) from the
# Go module proxy into the git-ignored .tools/argo-crds/<version>/, for the manifest tests
# (packages/pipeline/src/argo/manifests.test.ts). Cached: does nothing when they are there.
#
#   argo/scripts/fetch-crds.sh            # prints the folder holding the CRDs
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Pinned; keep in step with the Argo version the cluster runs (see argo/README.md).
ARGO_VERSION="${ARGO_VERSION:-v3.7.6}"
MODULE="github.com/argoproj/argo-workflows/v3"
DEST="$ROOT/.tools/argo-crds/$ARGO_VERSION"
CRDS=(workflows workflowtemplates cronworkflows clusterworkflowtemplates)

have_all() {
  local c; for c in "${CRDS[@]}"; do [[ -s "$DEST/argoproj.io_$c.yaml" ]] || return 1; done
}

if have_all; then
  echo "$DEST"
  exit 0
fi

# Test files running at once all ask for the CRDs: one downloads, the others wait for it.
mkdir -p "$(dirname "$DEST")"
exec 9>"$(dirname "$DEST")/.fetch.lock"
flock 9
if have_all; then
  echo "$DEST"
  exit 0
fi

command -v go >/dev/null || { echo "fetch-crds: 'go' not found on PATH" >&2; exit 1; }
echo "fetch-crds: downloading $MODULE@$ARGO_VERSION from the Go module proxy..." >&2
# Outside any module: `go mod download` fetches into the module cache and reports its Dir.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
dir="$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "$MODULE@$ARGO_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
[[ -n "$dir" && -d "$dir/manifests/base/crds/full" ]] || { echo "fetch-crds: no CRDs in module dir '$dir'" >&2; exit 1; }

mkdir -p "$tmp/out"
for c in "${CRDS[@]}"; do
  cp "$dir/manifests/base/crds/full/argoproj.io_$c.yaml" "$tmp/out/"
done
rm -rf "$DEST"
mv "$tmp/out" "$DEST"
chmod -R u+w "$DEST"
echo "fetch-crds: CRDs in $DEST" >&2
echo "$DEST"
