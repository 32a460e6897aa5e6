#!/usr/bin/env bash
# Fails when the committed generated code (and the OpenAPI document) differs from what `npm run
# generate` makes now, and when the API breaks compatibility with the latest release tag (v*),
# once there is one.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# buf.gen.yaml itself (its plugin options and excluded paths), written under $tmp.
npx buf generate --template buf.gen.yaml -o "$tmp"
if ! diff -r "$tmp/packages/api/src/gen" packages/api/src/gen >/dev/null; then
  diff -r "$tmp/packages/api/src/gen" packages/api/src/gen | head -20
  echo "generated code is stale: run 'npm run generate' and commit packages/api/src/gen" >&2
  exit 1
fi
echo "generated code is up to date"
# The Go client's generated code (protoc-gen-go and protoc-gen-connect-go from .tools/bin).
npx buf generate --template buf.gen.go.yaml -o "$tmp"
if ! diff -r "$tmp/clients/go/gen" clients/go/gen >/dev/null; then
  diff -r "$tmp/clients/go/gen" clients/go/gen | head -20
  echo "clients/go/gen is stale: run 'npm run generate' and commit it" >&2
  exit 1
fi
echo "Go client code is up to date"
# The OpenAPI document (gnostic's plugin from .tools/bin, then scripts/openapi.ts's additions).
npx tsx --conditions=source scripts/openapi.ts --check

release=$(git tag --list 'v*' --sort=-v:refname 2>/dev/null | head -n1 || true)
if [ -n "$release" ]; then
  npx buf breaking --against ".git#tag=$release"
  echo "no breaking changes against $release"
else
  echo "buf breaking: no release tag yet (v*); compatibility is checked from the first release on"
fi
