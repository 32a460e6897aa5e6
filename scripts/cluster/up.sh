#!/usr/bin/env bash
# npm run cluster:up — a Kubernetes cluster for the end-to-end suite (e2e/k8s), then what the project needs on top:
# a default StorageClass with a dynamic provisioner, Argo Workflows, GPU capacity, and the project's images.
#
#   KUBECONFIG set and reachable  → that cluster is used as it is (kind, k3d, a real one); nothing is started.
#   otherwise, on this machine kind → the tested scripts in $GLIMPSE_K8S_SCRIPTS (../shared/kubernetes/scripts)
#       run in place: binaries are built only when missing (~40 min cold on 2 cores, kept in K8S_ROOT=/tmp/k8s),
#       then up.sh (network namespace `k8s`, ~40 s) and argo.sh. The GPU capacity (nvidia.com/gpu on the real
#       node, a kwok GPU pool for placement) comes from up.sh.
# Then scripts/cluster/images.sh builds and pushes the Glimpse, trainer and MinIO images.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

kind=$(cluster_kind)
case $kind in
  external)
    log "using the cluster KUBECONFIG points at ($(kubectl config current-context 2>/dev/null || echo '?'))"
    [ -n "${GLIMPSE_K8S_REGISTRY:-}" ] || die "set GLIMPSE_K8S_REGISTRY to a registry the cluster pulls from (e.g. localhost:5001 for kind)"
    kubectl get storageclass -o name | grep -q . || die "the cluster has no StorageClass; install one (e.g. local-path-provisioner)"
    exec bash "$ROOT/scripts/cluster/images.sh"
    ;;
  none)
    die "no cluster: set KUBECONFIG to one (kind, k3d, …), or put the cluster scripts at $GLIMPSE_K8S_SCRIPTS (GLIMPSE_K8S_SCRIPTS)"
    ;;
esac

[ "$(id -u)" = 0 ] || die "the local cluster needs root (network namespace, containerd, kubelet)"
local_env
T0=$SECONDS

# --- Debian packages the cluster and the image builds use
need=()
for p in containerd runc containernetworking-plugins debootstrap iptables iproute2 openssl jq curl gcc libc6-dev buildah; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# --- binaries: the build scripts always rebuild, so each runs only when one of its outputs is missing
missing() { for b in "$@"; do [ -x "$K8S_BIN/$b" ] || return 0; done; return 1; }
S=$GLIMPSE_K8S_SCRIPTS
if missing kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; then log "building Kubernetes (~15 min cold)"; bash "$S/build-k8s.sh"; fi
for t in etcd kwok helm coredns registry crane; do
  if missing "$t"; then log "building $t"; bash "$S/build-tools.sh" "$t"; fi
done
if missing workflow-controller argoexec argo; then log "building Argo (~6 min cold)"; bash "$S/build-argo.sh"; fi
if missing tilt; then log "building tilt (~4 min cold)"; bash "$S/build-tools.sh" tilt; fi
bash "$ROOT/scripts/install-tools.sh" local-path-provisioner

# --- the cluster's own images (pause, Argo) and a minimal Debian trixie base (the local-path helper pods, and the
# base the project's CI images start from); each tar is pushed into the cluster's registry by up.sh
[ -f "$K8S_IMAGES/pause.tar" ] || bash "$S/build-images.sh" pause
[ -f "$K8S_IMAGES/argoexec.tar" ] && [ -f "$K8S_IMAGES/workflow-controller.tar" ] || bash "$S/build-images.sh" argo
if [ ! -f "$K8S_IMAGES/base-trixie-min.tar" ]; then
  log "building the Debian trixie base image (debootstrap, ~1.5 min)"
  BASE_SUITE=trixie BASE_INCLUDE=ca-certificates BASE_TAG_SUFFIX=-min bash "$S/build-images.sh" base
fi

# --- the cluster
if local_running; then
  log "the cluster is already up"
else
  ip netns list | grep -qw "$NETNS" && { log "a broken cluster is left over: tearing it down first"; bash "$ROOT/scripts/cluster/down.sh"; }
  iptables-save 2>/dev/null | grep -vc '^#' > "$GLIMPSE_K8S_CACHE/host-iptables-rules" || true   # down.sh checks it
  bash "$S/up.sh"
fi
bash "$S/argo.sh" >/dev/null

# --- a default StorageClass backed by local-path-provisioner (a host process in the netns, like coredns):
# PVCs (the bundled MinIO's) get a hostPath folder under $K8S_RUN/local-path, made and removed by helper pods
K() { nsx "$K8S_BIN/kubectl" "$@"; }
HELPER_IMAGE="$LOCAL_REGISTRY/base:trixie-min"
K apply -f - >/dev/null <<Y
apiVersion: v1
kind: Namespace
metadata: { name: local-path-storage }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: local-path-provisioner, namespace: local-path-storage }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: local-path-config, namespace: local-path-storage }
data:
  config.json: '{"nodePathMap":[{"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES","paths":["$K8S_RUN/local-path"]}]}'
  setup: |-
    #!/bin/sh
    set -eu
    mkdir -m 0777 -p "\$VOL_DIR"
  teardown: |-
    #!/bin/sh
    set -eu
    rm -rf "\$VOL_DIR"
  helperPod.yaml: |-
    apiVersion: v1
    kind: Pod
    metadata: { name: helper-pod }
    spec:
      tolerations: [ { key: node.kubernetes.io/disk-pressure, operator: Exists, effect: NoSchedule } ]
      containers: [ { name: helper-pod, image: $HELPER_IMAGE, imagePullPolicy: IfNotPresent } ]
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local-path
  annotations: { storageclass.kubernetes.io/is-default-class: "true" }
provisioner: rancher.io/local-path
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
Y
pidf=$K8S_RUN/pids/local-path-provisioner.pid
if ! { [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; }; then
  mkdir -p "$K8S_RUN/local-path"
  nsenter --net=/run/netns/"$NETNS" setsid "$ROOT/.tools/bin/local-path-provisioner" start \
    --kubeconfig "$KUBECONFIG" --namespace local-path-storage --configmap-name local-path-config \
    --service-account-name local-path-provisioner --helper-image "$HELPER_IMAGE" \
    >"$K8S_LOG/local-path-provisioner.log" 2>&1 </dev/null &
  echo $! > "$pidf"
fi

# --- the project's images into the cluster's registry
bash "$ROOT/scripts/cluster/images.sh"
log "up in $((SECONDS - T0)) s; use it with: . $GLIMPSE_K8S_SCRIPTS/env.sh; nsx kubectl get nodes"
