#!/usr/bin/env bash
# npm run test:k8s — the end-to-end suite (e2e/k8s) on a real Kubernetes cluster.
#   KUBECONFIG reaches a cluster      → runs there (GLIMPSE_K8S_REGISTRY: where the images are pushed).
#   the local cluster is up           → runs there, with images rebuilt from this working tree.
#   the cluster scripts are here      → brings the local cluster up (npm run cluster:up), runs, and takes it
#                                       down again (GLIMPSE_K8S_KEEP=1 keeps it).
#   none of these                     → says plainly that it did not run and how to run it; on CI that fails.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

kind=$(cluster_kind)
if [ "$kind" = none ]; then
  msg="the Kubernetes end-to-end suite did NOT run: no cluster. Run it with a cluster: KUBECONFIG=<kubeconfig> GLIMPSE_K8S_REGISTRY=<registry it pulls from> npm run test:k8s, or where the cluster scripts are (GLIMPSE_K8S_SCRIPTS, default $GLIMPSE_K8S_SCRIPTS): npm run test:k8s"
  if [ "${CI:-}" = true ]; then die "$msg (required on CI)"; fi
  echo "== $msg" >&2
  exit 0
fi

CONFIG=e2e/k8s/vitest.config.ts
if [ "$kind" = external ]; then
  bash scripts/cluster/images.sh
  set -a; . "${GLIMPSE_K8S_CACHE:-$ROOT/.tools/k8s}/images.env"; set +a
  exec npx vitest run -c "$CONFIG" "$@"
fi

local_env
started=0
if local_running; then
  bash scripts/cluster/images.sh
else
  bash scripts/cluster/up.sh
  started=1
fi
set -a; . "$GLIMPSE_K8S_CACHE/images.env"; set +a
# The suite runs inside the cluster's network namespace: the API server is on its loopback and Services are
# reachable there, and nothing else is.
rc=0
nsx env PATH="$K8S_BIN:$PATH" KUBECONFIG="$KUBECONFIG" GLIMPSE_E2E_TILT="$K8S_BIN/tilt" \
  npx vitest run -c "$CONFIG" "$@" || rc=$?
# a cluster this run started goes down again; leftovers fail the run
if [ $started = 1 ] && [ "${GLIMPSE_K8S_KEEP:-}" != 1 ]; then
  bash scripts/cluster/down.sh || { [ $rc != 0 ] || rc=1; }
fi
exit $rc
