#!/usr/bin/env bash
# Builds pinned developer/test tools from the Go module proxy into .tools/bin/ (git-ignored).
# Cached: a tool is rebuilt only when its binary is missing or was built from another version
# (checked with `go version -m`, which reads the module version embedded in the binary).
#
#   scripts/install-tools.sh            # all tools
#   scripts/install-tools.sh minio      # only the named ones
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.tools/bin"
mkdir -p "$BIN"

# name|module path (what `go version -m` reports as "mod")|package to install|version|extra -ldflags
# MinIO tags releases as RELEASE.<date>, which are not semver: the module proxy serves only
# commit pseudo-versions. This is the newest commit on the proxy (2026-02-12, newer than
# RELEASE.2025-10-15T17-29-55Z); it builds with Go 1.26. `go list -m github.com/minio/minio@latest`
# shows what is newer.
TOOLS=(
  "minio|github.com/minio/minio|github.com/minio/minio|v0.0.0-20260212201848-7aac2a2c5b7c|"
  "grpcurl|github.com/fullstorydev/grpcurl|github.com/fullstorydev/grpcurl/cmd/grpcurl|v1.9.4|-X main.version=v1.9.4"
  "helm|helm.sh/helm/v3|helm.sh/helm/v3/cmd/helm|v3.22.0|-X helm.sh/helm/v3/internal/version.version=v3.22.0"
  # buf's local plugin for the OpenAPI 3 document (buf.gen.yaml; checked fresh by scripts/check-proto.sh).
  "protoc-gen-openapi|github.com/google/gnostic|github.com/google/gnostic/cmd/protoc-gen-openapi|v0.7.1|"
  # buf's local plugins for the Go client's generated code (buf.gen.go.yaml).
  "protoc-gen-go|google.golang.org/protobuf|google.golang.org/protobuf/cmd/protoc-gen-go|v1.36.12|"
  "protoc-gen-connect-go|connectrpc.com/connect|connectrpc.com/connect/cmd/protoc-gen-connect-go|v1.21.1|"
)
# Built only when named (scripts/cluster/up.sh): the dynamic PVC provisioner of the local test cluster.
ON_REQUEST=(
  "local-path-provisioner|github.com/rancher/local-path-provisioner|github.com/rancher/local-path-provisioner|v0.0.30|"
)

command -v go >/dev/null || { echo "install-tools: 'go' not found on PATH (need Go >= 1.26)" >&2; exit 1; }

want=("$@")
selected() {
  [[ ${#want[@]} -eq 0 ]] && [[ $2 == default ]] && return 0
  local w; for w in "${want[@]}"; do [[ "$w" == "$1" ]] && return 0; done
  return 1
}

for spec in "${TOOLS[@]/%/|default}" "${ON_REQUEST[@]/%/|on-request}"; do
  IFS='|' read -r name mod pkg version ldflags kind <<<"$spec"
  selected "$name" "$kind" || continue
  bin="$BIN/$name"
  if [[ -x "$bin" ]]; then
    have="$(go version -m "$bin" 2>/dev/null | awk -v m="$mod" '$1=="mod" && $2==m {print $3}')"
    if [[ "$have" == "$version" ]]; then
      echo "install-tools: $name $version already built ($bin)"
      continue
    fi
    echo "install-tools: $name is ${have:-unknown}, want $version: rebuilding"
  fi
  echo "install-tools: building $name $version (first build can take several minutes)..."
  start=$SECONDS
  # Build into a temp GOBIN and move into place, so an interrupted build never leaves a broken binary.
  tmp="$(mktemp -d "$BIN/.build-$name.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  GOBIN="$tmp" GOFLAGS="-trimpath -buildvcs=false" CGO_ENABLED=0 go install -ldflags="-s -w $ldflags" "$pkg@$version"
  mv -f "$tmp/$name" "$bin"
  rm -rf "$tmp"; trap - EXIT
  echo "install-tools: built $name $version in $((SECONDS - start))s -> $bin"
done
