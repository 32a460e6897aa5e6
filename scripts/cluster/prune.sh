#!/usr/bin/env bash
# scripts/cluster/prune.sh — drops cached images of other commits (scripts/cluster/images.sh keeps one tag's).
# `npm test` runs it first: the cache outlives clones, and a disk filled by old images fails every test that
# writes (MinIO refuses writes on a drive more than 99% full).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
case $(cluster_kind) in
  local) local_env ;;
  *) GLIMPSE_K8S_CACHE=${GLIMPSE_K8S_CACHE:-$ROOT/.tools/k8s} ;;
esac
[ -d "$GLIMPSE_K8S_CACHE" ] || exit 0
prune_cache "$(image_tag)"
