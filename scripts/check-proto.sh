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

# The clients carry the API's release (proto/VERSION, tagged v<version> by scripts/release.sh).
version=$(tr -d '[:space:]' < proto/VERSION)
python_version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' clients/python/src/glimpse/_version.py)
go_version=$(sed -n 's/^const Version = "\(.*\)"$/\1/p' clients/go/version.go)
if [ "$python_version" != "$version" ] || [ "$go_version" != "$version" ]; then
  echo "proto/VERSION is $version, the Python client says '$python_version' and the Go client '$go_version': make them agree" >&2
  exit 1
fi
# A released version's protos are frozen: a change after v<version> needs the next version.
if git rev-parse -q --verify "refs/tags/v$version" >/dev/null && ! git diff --quiet "v$version" -- proto/glimpse; then
  echo "proto/ changed since the release v$version: set the next version in proto/VERSION (and the clients: scripts/release.sh --set)" >&2
  exit 1
fi
echo "clients at the API's version $version"

release=$(git tag --list 'v*' --sort=-v:refname 2>/dev/null | head -n1 || true)
if [ -n "$release" ]; then
  npx buf breaking --against ".git#tag=$release"
  echo "no breaking changes against $release"
else
  echo "buf breaking: no release tag yet (v*); compatibility is checked from the first release on"
fi
