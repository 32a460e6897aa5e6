#!/usr/bin/env bash
# The CI base of the trainer image, built without Docker: Debian trixie with Debian's own
# (CPU) PyTorch, as a docker-archive tar that model/Dockerfile takes as its BASE.
#
#   sudo model/scripts/ci-base.sh /tmp/glimpse-trainer-base-ci.tar
#   sudo buildah --storage-driver overlay bud --isolation chroot -v /etc/ssl/certs:/etc/ssl/certs:ro \
#       --build-arg BASE=docker-archive:/tmp/glimpse-trainer-base-ci.tar \
#       -f model/Dockerfile -t localhost/glimpse-trainer:ci model
#
# Steps: debootstrap --variant=minbase a trixie rootfs with the packages below, trim it
# (apt lists and caches, docs, man pages), copy it into a `buildah from scratch` container,
# commit it as $IMAGE and write it to the tar. Runs as root; installs debootstrap and buildah
# with apt-get when missing.
#
# Environment: SUITE (trixie), MIRROR (default: the first URIs line of
# /etc/apt/sources.list.d/debian.sources, else http://deb.debian.org/debian), STORAGE_DRIVER
# (buildah's, default overlay; vfs where overlay is unavailable), IMAGE
# (localhost/glimpse-trainer-base:ci), WORK (scratch folder, default a fresh mktemp -d, removed
# at the end unless KEEP_WORK=1).
#
# What the base holds: python3 (3.13) and pip, Debian's torch/torchvision (CPU), and onnx from
# Debian: onnx 1.17.0, the version pyproject.toml pins, has no CPython 3.13 wheel on PyPI, and
# Debian's python3-onnx is exactly 1.17.0, so the Dockerfile's pinned `pip install` finds it
# already satisfied. The other pins (numpy, pillow, onnxruntime, matplotlib, minio, tqdm, the
# pretrained towers' packages, transformers) come from PyPI wheels in the Dockerfile, as on the CUDA base. `python` on PATH is
# a venv with the system site packages (/opt/venv): pip installs the pins there, in front of
# Debian's numpy 2.2 and pillow 11.1 (which torch/torchvision depend on) instead of trying to
# uninstall those (pip cannot remove a Debian numpy: "uninstall-no-record-file").
set -euo pipefail

OUT=${1:?usage: ci-base.sh OUT.tar}
SUITE=${SUITE:-trixie}
STORAGE_DRIVER=${STORAGE_DRIVER:-overlay}
IMAGE=${IMAGE:-localhost/glimpse-trainer-base:ci}
PACKAGES=python3,python3-pip,python3-torch,python3-torchvision,python3-onnx,ca-certificates
if [ -z "${MIRROR:-}" ]; then
  MIRROR=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi

[ "$(id -u)" = 0 ] || { echo "ci-base.sh: run as root" >&2; exit 1; }
missing=""
command -v debootstrap >/dev/null || missing="$missing debootstrap"
command -v buildah >/dev/null || missing="$missing buildah"
if [ -n "$missing" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
fi

WORK=${WORK:-$(mktemp -d /tmp/glimpse-ci-base.XXXXXX)}
ROOTFS=$WORK/rootfs
cleanup() {
  if [ "${KEEP_WORK:-0}" != 1 ]; then rm -rf "$ROOTFS"; rmdir "$WORK" 2>/dev/null || true; fi
}
trap cleanup EXIT

echo "ci-base: debootstrap $SUITE from $MIRROR into $ROOTFS" >&2
rm -rf "$ROOTFS"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR"

# what an image does not need
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/lib/apt/lists/* \
       "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/var/log/*.log \
       "$ROOTFS"/var/log/apt/* "$ROOTFS"/tmp/* "$ROOTFS"/root/.cache
find "$ROOTFS"/usr/lib/python3* -name __pycache__ -prune -exec rm -rf {} + 2>/dev/null || true
chroot "$ROOTFS" python3 -m venv --without-pip --system-site-packages /opt/venv
chroot "$ROOTFS" /opt/venv/bin/python -c 'import torch, torchvision, onnx; print("ci-base: torch", torch.__version__, "torchvision", torchvision.__version__, "onnx", onnx.__version__)' >&2

B=(buildah --storage-driver "$STORAGE_DRIVER")
ctr=$("${B[@]}" from scratch)
mnt=$("${B[@]}" mount "$ctr")
cp -a "$ROOTFS"/. "$mnt"/
"${B[@]}" umount "$ctr" >/dev/null
"${B[@]}" config --cmd /bin/bash --env LANG=C.UTF-8 \
  --env PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --label org.opencontainers.image.description="Glimpse trainer CI base: Debian $SUITE, python3, Debian's torch/torchvision/onnx" "$ctr"
"${B[@]}" commit --rm "$ctr" "$IMAGE" >/dev/null
rm -f "$OUT"
"${B[@]}" push "$IMAGE" "docker-archive:$OUT:$IMAGE"
echo "ci-base: $IMAGE -> $OUT ($(du -h "$OUT" | cut -f1))" >&2
