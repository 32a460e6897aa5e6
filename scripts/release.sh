#!/usr/bin/env bash
# Releases the API and its clients at proto/VERSION: the tags v<version> (the protos; `buf
# breaking` checks later changes against it) and clients/go/v<version> (the Go module's tag).
#   bash scripts/release.sh            tag HEAD (clean, and checked by scripts/check-proto.sh)
#   bash scripts/release.sh --set X.Y.Z  start the next version: proto/VERSION and both clients
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--set" ]; then
  next=${2:?usage: scripts/release.sh --set X.Y.Z}
  [[ "$next" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "not a version: $next" >&2; exit 1; }
  echo "$next" > proto/VERSION
  sed -i "s/^__version__ = \".*\"$/__version__ = \"$next\"/" clients/python/src/glimpse/_version.py
  sed -i "s/^const Version = \".*\"$/const Version = \"$next\"/" clients/go/version.go
  echo "version $next: commit proto/VERSION and the clients, then release with scripts/release.sh"
  exit 0
fi

version=$(tr -d '[:space:]' < proto/VERSION)
if ! git diff --quiet HEAD; then echo "commit or stash your changes first: the tags name HEAD" >&2; exit 1; fi
if git rev-parse -q --verify "refs/tags/v$version" >/dev/null; then echo "v$version is released already: scripts/release.sh --set <next>" >&2; exit 1; fi
bash scripts/check-proto.sh
git tag -a "v$version" -m "Glimpse API v$version"
git tag -a "clients/go/v$version" -m "Glimpse Go client v$version"
echo "tagged v$version and clients/go/v$version; push them with: git push origin v$version clients/go/v$version"
