#!/usr/bin/env bash
# Fails when the committed generated code (and the OpenAPI document) differs from what `npm run
# generate` makes now, and when the API breaks compatibility with the latest release tag (v*),
# once there is one.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# One buf template's output, made under $tmp with the template itself (its plugins, options and
# paths), against the committed folder.
fresh() { # $1 = template, $2 = the folder it writes
  npx buf generate --template "$1" -o "$tmp"
  if ! diff -r "$tmp/$2" "$2" >/dev/null; then
    diff -r "$tmp/$2" "$2" | head -20
    echo "$2 is stale: run 'npm run generate' and commit it" >&2
    exit 1
  fi
  echo "$2 is up to date"
}
fresh buf.gen.yaml packages/api/src/gen
fresh buf.gen.go.yaml clients/go/gen   # protoc-gen-go and protoc-gen-connect-go from .tools/bin
# The OpenAPI document (gnostic's plugin from .tools/bin, then scripts/openapi.ts's additions).
npx tsx --conditions=source scripts/openapi.ts --check

release=$(git tag --list 'v*' --sort=-v:refname 2>/dev/null | head -n1 || true)
if [ -n "$release" ]; then
  npx buf breaking --against ".git#tag=$release"
  echo "no breaking changes against $release"
else
  echo "buf breaking: no release tag yet (v*); compatibility is checked from the first release on"
fi
