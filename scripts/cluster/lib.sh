# lib.sh — shared by scripts/cluster/*.sh (sourced). Decides which cluster the end-to-end suite uses:
#   1. KUBECONFIG pointing at a reachable cluster (kind, k3d, a real one): used as it is ("external").
#   2. Otherwise the single-node cluster built from source on this machine kind, by the tested scripts in
#      GLIMPSE_K8S_SCRIPTS (default ../shared/kubernetes/scripts beside the repository), run in place.
#      Their builds live in K8S_ROOT (default /tmp/k8s), outside the checkout, so clean clones reuse them.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
GLIMPSE_K8S_SCRIPTS=${GLIMPSE_K8S_SCRIPTS:-$(cd "$ROOT/.." && pwd)/shared/kubernetes/scripts}
log() { echo "cluster: $*" >&2; }
die() { echo "cluster: $*" >&2; exit 1; }

# The kind of cluster: "external" (KUBECONFIG reaches one), "local" (the scripts are here) or "none".
cluster_kind() {
  if [ -n "${KUBECONFIG:-}" ] && [ "${KUBECONFIG}" != "${K8S_PKI:-/nonexistent}/admin.kubeconfig" ] \
     && command -v kubectl >/dev/null && kubectl version --request-timeout=5s >/dev/null 2>&1; then
    echo external
  elif [ -f "$GLIMPSE_K8S_SCRIPTS/env.sh" ]; then
    echo local
  else
    echo none
  fi
}

# Loads the local cluster's environment (versions, paths, nsx) without leaking `set -u` problems.
local_env() {
  # shellcheck disable=SC1091
  . "$GLIMPSE_K8S_SCRIPTS/env.sh"
  GLIMPSE_K8S_CACHE=${GLIMPSE_K8S_CACHE:-$K8S_ROOT/glimpse}   # the project's own cached builds (images, bases)
  export GLIMPSE_K8S_CACHE
  mkdir -p "$GLIMPSE_K8S_CACHE"
}

local_running() { ip netns list 2>/dev/null | grep -qw "${NETNS:-k8s}" && nsx "$K8S_BIN/kubectl" get --raw /readyz >/dev/null 2>&1; }

# buildah (daemonless) with its storage under the cache, not /var/lib/containers: every buildah call of the
# scripts (model/scripts/ci-base.sh too) reads CONTAINERS_STORAGE_CONF.
buildah_storage() {
  export CONTAINERS_STORAGE_CONF=$GLIMPSE_K8S_CACHE/storage.conf
  printf '[storage]\ndriver = "%s"\ngraphroot = "%s"\nrunroot = "%s"\n' "${GLIMPSE_BUILDAH_DRIVER:-overlay}" \
    "$GLIMPSE_K8S_CACHE/containers" "$GLIMPSE_K8S_CACHE/containers-run" > "$CONTAINERS_STORAGE_CONF"
}

# The images' tag names the source: the commit, plus a hash of uncommitted changes.
image_tag() {
  local tag dirty
  tag=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo dev)
  dirty=$( (git -C "$ROOT" diff HEAD; git -C "$ROOT" ls-files --others --exclude-standard | xargs -r cat) 2>/dev/null | sha256sum | cut -c1-8)
  [ -z "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ] || tag="$tag-$dirty"
  echo "$tag"
}

# prune_cache TAG: the cache keeps one tag's images. Every commit makes ~3 GB of image tars and build layers and the
# cache outlives clones (CI reuses it), so other tags' tars and buildah images go; the bases (versioned) stay.
# buildah's layer cache keeps what TAG's images were built from (those layers have children; the npm ci stage is named
# glimpse-deps:TAG for that, images.sh); the rest becomes dangling.
prune_cache() {
  local tag=$1 f img
  for f in "$GLIMPSE_K8S_CACHE"/glimpse-*.tar; do
    [ -e "$f" ] || continue
    case ${f##*/} in "glimpse-$tag.tar" | "glimpse-$tag-upgrade.tar" | "glimpse-trainer-$tag.tar") ;;
      *) rm -f "$f"; log "pruned ${f##*/}" ;; esac
  done
  [ -d "$GLIMPSE_K8S_CACHE/containers" ] && command -v buildah >/dev/null || return 0
  buildah_storage
  # the project's images (and their npm ci stage, images.sh) of other tags, under any registry name (images.sh
  # imports pushed names too)
  buildah images --format '{{.Name}}:{{.Tag}}' 2>/dev/null | grep -E '/(glimpse|glimpse-trainer|glimpse-deps):' |
    while read -r img; do
      case ${img##*:} in "$tag" | "$tag-upgrade" | tilt) ;; *) buildah rmi -f "$img" >/dev/null 2>&1 || true ;; esac
    done
  # removing an image can leave its parent dangling in turn
  for _ in 1 2 3 4 5 6; do [ -n "$(buildah rmi --prune 2>/dev/null)" ] || break; done
  log "image cache: $(du -sh "$GLIMPSE_K8S_CACHE" 2>/dev/null | cut -f1) in $GLIMPSE_K8S_CACHE"
}
