#!/usr/bin/env bash
# npm run cluster:down — stops the local cluster (scripts/cluster/up.sh) and checks that nothing is left behind:
# no process in its network namespace, no mount under K8S_ROOT, no netns, no iptables rule of its own.
# Build outputs (binaries, images, caches under K8S_ROOT) are kept for the next cluster:up.
# An external cluster (KUBECONFIG) is not ours to stop: this says so and does nothing.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

[ "$(cluster_kind)" = local ] || { log "not a local cluster: nothing to stop"; exit 0; }
local_env
pidf=$K8S_RUN/pids/local-path-provisioner.pid
if [ -f "$pidf" ]; then kill -TERM "$(cat "$pidf")" 2>/dev/null; sleep 1; kill -KILL "$(cat "$pidf")" 2>/dev/null; rm -f "$pidf"; fi
# buildah working containers hold overlay mounts under the cache
if command -v buildah >/dev/null && [ -d "$GLIMPSE_K8S_CACHE/containers" ]; then buildah_storage; buildah rm --all >/dev/null 2>&1 || true; fi
ipt_before=$(cat "$GLIMPSE_K8S_CACHE/host-iptables-rules" 2>/dev/null || iptables-save 2>/dev/null | grep -vc "^#")
bash "$GLIMPSE_K8S_SCRIPTS/down.sh"

left=0
if ip netns list | grep -qw "$NETNS"; then log "LEFT: netns $NETNS"; left=1; fi
if grep -q " $K8S_ROOT" /proc/mounts; then log "LEFT: mounts under $K8S_ROOT:"; grep " $K8S_ROOT" /proc/mounts >&2; left=1; fi
for p in /proc/[0-9]*; do
  if tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -qE "^($K8S_BIN/|$ROOT/.tools/bin/local-path-provisioner|containerd --config $K8S_RUN)"; then
    log "LEFT: process ${p#/proc/}: $(tr '\0' ' ' < "$p/cmdline")"; left=1
  fi
done
ipt_after=$(iptables-save 2>/dev/null | grep -vc '^#')
# the cluster's rules live in its own netns; the host's table must not have grown
if [ "$ipt_after" -gt "$ipt_before" ]; then log "LEFT: host iptables grew from $ipt_before to $ipt_after rules"; left=1; fi
[ $left = 0 ] && log "down: nothing left behind (no netns, mount, process or host iptables rule)"
exit $left
