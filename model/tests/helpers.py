"""Test fixtures generated on the fly: a tiny image–caption dataset (as a published
dataset version in a folder store, and in the raw Flickr8K archive layout)."""
from __future__ import annotations

import hashlib
import io
import json
import random
import zipfile
from pathlib import Path

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
