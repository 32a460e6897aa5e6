#!/usr/bin/env bash
# Fails when the committed generated code differs from what `buf generate` makes now, and
# when the API breaks compatibility with the latest release tag (v*), once there is one.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/buf.gen.yaml" <<YAML
version: v2
inputs:
  - directory: proto
plugins:
  - local: protoc-gen-es
    out: $tmp/gen
    opt: [target=ts, import_extension=js]
YAML
npx buf generate --template "$tmp/buf.gen.yaml"
if ! diff -r "$tmp/gen" packages/api/src/gen >/dev/null; then
  diff -r "$tmp/gen" packages/api/src/gen | head -20
  echo "generated code is stale: run 'npm run generate' and commit packages/api/src/gen" >&2
  exit 1
fi
echo "generated code is up to date"

release=$(git tag --list 'v*' --sort=-v:refname 2>/dev/null | head -n1 || true)
if [ -n "$release" ]; then
  npx buf breaking --against ".git#tag=$release"
  echo "no breaking changes against $release"
else
  echo "buf breaking: no release tag yet (v*); compatibility is checked from the first release on"
fi
