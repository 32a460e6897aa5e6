"""Test fixtures generated on the fly: a tiny image–caption dataset (as a published
dataset version in a folder store, and in the raw Flickr8K archive layout) and a
synthetic TF.js layers model with MobileNetV1 layer naming."""
from __future__ import annotations

import hashlib
import io
import json
import random
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLORS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220), "yellow": (235, 220, 30),
          "white": (245, 245, 245), "black": (15, 15, 15)}
BGS = {"grey": (128, 128, 128), "orange": (240, 140, 30), "purple": (120, 40, 160)}
SHAPES = ["circle", "square", "triangle"]


def make_tiny_dataset(n_train: int = 240, n_dev: int = 60, n_test: int = 30, size: int = 64, seed: int = 0):
    """Return (images {id: jpeg bytes}, captions {id: [5 captions]}, splits)."""
    rng = random.Random(seed)
    images, captions = {}, {}
    splits = {"train": [], "dev": [], "test": []}
    combos = [(c, s, b) for c in COLORS for s in SHAPES for b in BGS]
    n = 0
    for split, count in (("train", n_train), ("dev", n_dev), ("test", n_test)):
        for _ in range(count):
            c, s, b = combos[rng.randrange(len(combos))]
            im = Image.new("RGB", (size, size), BGS[b])
            d = ImageDraw.Draw(im)
            r = rng.randint(size // 5, size // 3)
            cx, cy = rng.randint(r, size - r), rng.randint(r, size - r)
            if s == "circle":
                d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=COLORS[c])
            elif s == "square":
                d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=COLORS[c])
            else:
                d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=COLORS[c])
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=92)
            iid = f"{1000000 + n}_{hashlib.md5(str(n).encode()).hexdigest()[:10]}"
            n += 1
            images[iid] = buf.getvalue()
            captions[iid] = [
                f"A {c} {s} on a {b} background .",
                f"a {s} that is {c} , {b} behind it",
                f"The {c.upper()} {s}  sits on {b}",
                f"{b} backdrop with a {c} {s}",
                f"there is one {c} {s} here on {b}",
            ]
            splits[split].append(iid)
    return images, captions, splits


def write_published_version(root: Path, images, captions, splits, bucket: str = "glimpse",
                            dataset: str = "flickr8k", size: int = 64) -> str:
    """Write a dataset version in the pipeline's published layout; return its version id."""
    base = Path(root) / bucket

    def blob(data: bytes) -> dict:
        h = hashlib.sha256(data).hexdigest()
        key = f"datasets/{dataset}/blobs/sha256/{h}"
        p = base / key
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return {"key": key, "sha256": h, "size": len(data)}

    cap_ref = blob(json.dumps(captions, sort_keys=True).encode())
    spl_ref = blob(json.dumps(splits).encode())
    imgs = {iid: dict(blob(b), width=size, height=size) for iid, b in images.items()}
    manifest = {"schema": "glimpse.dataset.manifest/v1", "dataset": dataset,
                "params": {"test": True}, "sources": [{"name": "generated"}],
                "image_format": {"format": "jpeg", "width": size, "height": size},
                "counts": {"images": len(images), "captions": sum(len(v) for v in captions.values()),
                           **{k: len(v) for k, v in splits.items()}},
                "captions": cap_ref, "splits": spl_ref, "images": imgs}
    raw = json.dumps(manifest, indent=1).encode()
    version = hashlib.sha256(raw).hexdigest()[:16]
    mkey = f"datasets/{dataset}/versions/{version}/manifest.json"
    (base / mkey).parent.mkdir(parents=True, exist_ok=True)
    (base / mkey).write_bytes(raw)
    (base / f"datasets/{dataset}/latest.json").write_text(json.dumps(
        {"version": version, "manifest": mkey, "published_at": "2026-01-01T00:00:00Z"}))
    return version


def write_raw_flickr_layout(root: Path, images, captions, splits) -> None:
    """The original archive layout, including the real data's quirks."""
    root.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(root / "Flickr8k_Dataset.zip", "w") as zf:
        for iid, b in images.items():
            zf.writestr(f"Flicker8k_Dataset/{iid}.jpg", b)
    lines = []
    for n, (iid, caps) in enumerate(captions.items()):
        for k, c in enumerate(caps):
            name = f"{iid}.jpg.1" if (n == 0 and k == 0) else f"{iid}.jpg"  # the .jpg.1 quirk
            lines.append(f"{name}#{k}\t{c}")
    with zipfile.ZipFile(root / "Flickr8k_text.zip", "w") as zf:
        zf.writestr("Flickr8k.token.txt", "\n".join(lines) + "\n")
        for s, name in (("train", "train"), ("dev", "dev"), ("test", "test")):
            zf.writestr(f"Flickr_8k.{name}Images.txt", "\n".join(f"{i}.jpg" for i in splits[s]) + "\n")


# ---------------------------------------------------------------------------------------
# synthetic TF.js MobileNetV1 (same layer naming / manifest format as the real one)
# ---------------------------------------------------------------------------------------
V1 = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
      (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]


def synthetic_tfjs_weights(alpha: float = 0.75, classes: int = 1000, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    ws: list[tuple[str, np.ndarray]] = []

    def bn(name, c):
        ws.append((f"{name}/gamma", rng.uniform(0.5, 1.5, c).astype(np.float32)))
        ws.append((f"{name}/beta", rng.normal(0, 0.1, c).astype(np.float32)))
        ws.append((f"{name}/moving_mean", rng.normal(0, 0.1, c).astype(np.float32)))
        ws.append((f"{name}/moving_variance", rng.uniform(0.5, 1.5, c).astype(np.float32)))

    c0 = int(32 * alpha)
    ws.append(("conv1/kernel", rng.normal(0, 0.3, (3, 3, 3, c0)).astype(np.float32)))
    bn("conv1_bn", c0)
    cin = c0
    for k, (c, s) in enumerate(V1, start=1):
        cout = int(c * alpha)
        ws.append((f"conv_dw_{k}/depthwise_kernel", rng.normal(0, 0.3, (3, 3, cin, 1)).astype(np.float32)))
        bn(f"conv_dw_{k}_bn", cin)
        ws.append((f"conv_pw_{k}/kernel", rng.normal(0, 1.0 / np.sqrt(cin), (1, 1, cin, cout)).astype(np.float32)))
        bn(f"conv_pw_{k}_bn", cout)
        cin = cout
    ws.append(("conv_preds/kernel", rng.normal(0, 1.0 / np.sqrt(cin), (1, 1, cin, classes)).astype(np.float32)))
    ws.append(("conv_preds/bias", rng.normal(0, 0.1, classes).astype(np.float32)))
    return ws


def write_tfjs_model(d: Path, ws: list[tuple[str, np.ndarray]], classes: int = 1000) -> None:
    """model.json + one shard per layer (like the real export) + metadata.json."""
    d.mkdir(parents=True, exist_ok=True)
    groups: dict[str, list] = {}
    for name, arr in ws:
        groups.setdefault(name.split("/")[0], []).append((name, arr))
    manifest = []
    for g, (layer, items) in enumerate(groups.items(), start=1):
        fn = f"group{g}-shard1of1"
        (d / fn).write_bytes(b"".join(a.astype("<f4").tobytes() for _, a in items))
        manifest.append({"paths": [fn], "weights": [{"name": n, "shape": list(a.shape), "dtype": "float32"}
                                                    for n, a in items]})
    (d / "model.json").write_text(json.dumps({"modelTopology": {"model_config": {"class_name": "Model"}},
                                              "weightsManifest": manifest}))
    (d / "metadata.json").write_text(json.dumps({"labels": [f"class{i}" for i in range(classes)]}))


# ---------------------------------------------------------------------------------------
# numpy reference of TF/Keras ops (independent of PyTorch)
# ---------------------------------------------------------------------------------------
def tf_same_pad(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """x NHWC; TF 'same': total = max((ceil(n/s)-1)*s + k - n, 0), extra on bottom/right."""
    def amt(n):
        out = -(-n // s)
        tot = max((out - 1) * s + k - n, 0)
        return tot // 2, tot - tot // 2
    (t, b), (l, r) = amt(x.shape[1]), amt(x.shape[2])
    return np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))


def _same_conv(x, k, s, out_channels, tap):
    """Sums tap(patch, i, j) over the k×k kernel taps of a TF-'same' strided conv (x NHWC, float64)."""
    xp = tf_same_pad(x, k, s).astype(np.float64)
    oh, ow = -(-x.shape[1] // s), -(-x.shape[2] // s)
    y = np.zeros((x.shape[0], oh, ow, out_channels))
    for i in range(k):
        for j in range(k):
            y += tap(xp[:, i:i + s * oh:s, j:j + s * ow:s, :], i, j)
    return y


def np_conv(x, w, s):
    """x NHWC, w HWIO, TF same padding."""
    return _same_conv(x, w.shape[0], s, w.shape[3], lambda p, i, j: np.einsum("nhwc,co->nhwo", p, w[i, j].astype(np.float64)))


def np_dwconv(x, w, s):
    """x NHWC, w [kh,kw,C,1], TF same padding."""
    return _same_conv(x, w.shape[0], s, x.shape[3], lambda p, i, j: p * w[i, j, :, 0].astype(np.float64))


def np_bn_relu6(x, w, name, eps=1e-3):
    g, b, m, v = (w[f"{name}/{t}"].astype(np.float64) for t in ("gamma", "beta", "moving_mean", "moving_variance"))
    return np.clip((x - m) / np.sqrt(v + eps) * g + b, 0, 6)


def np_mobilenet_v1(x_nhwc: np.ndarray, w: dict, upto_block: int = 13, logits: bool = True):
    """Keras MobileNetV1 forward in numpy (float64). Returns (features, logits|None)."""
    y = np_bn_relu6(np_conv(x_nhwc, w["conv1/kernel"], 2), w, "conv1_bn")
    for k, (_, s) in enumerate(V1[:upto_block], start=1):
        y = np_bn_relu6(np_dwconv(y, w[f"conv_dw_{k}/depthwise_kernel"], s), w, f"conv_dw_{k}_bn")
        y = np_bn_relu6(np.einsum("nhwc,co->nhwo", y, w[f"conv_pw_{k}/kernel"][0, 0].astype(np.float64)),
                        w, f"conv_pw_{k}_bn")
    out = None
    if logits and upto_block == 13:
        p = y.mean(axis=(1, 2))
        out = p @ w["conv_preds/kernel"][0, 0].astype(np.float64) + w["conv_preds/bias"]
    return y, out
