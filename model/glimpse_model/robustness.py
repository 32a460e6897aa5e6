"""Retrieval on photos of other sizes, as served: a split's images sent as uploads of another size
and shape, through an export (its ONNX encoders, preprocessing and query bank: evaluate.Served).

    cd model
    uv run python -m glimpse_model.robustness --export runs/f8k-pre/export --split test \
        --flickr8k-dir ../../shared/datasets/flickr8k --resize-width 200 --aspect 3:2 --phone \
        --out runs/f8k-pre/robustness_test.json

The split's images are measured as stored (``copy``: the dataset's 224×224 copies), then as each
upload asked for. The stored copies are squashed to 224×224, so their original aspect is lost: an
upload of another shape is emulated from them. ``--resize-width 200 --aspect 3:2``: resized
(bilinear) to 200×133, kept lossless or, with ``--jpeg-quality Q``, encoded as a JPEG; ``--phone``:
upscaled to 3024×2268 (a 12-megapixel phone photo) and encoded as a JPEG of quality 85. Serving
then squashes each upload to the export's input (preprocess.json: resize "fill", bilinear), as
the evaluation does here with the trainer's resize (PIL); the Ranking service's sharp resizes a
large JPEG with its own reduction, so the phone figures there may differ slightly.

Prints (and with ``--out`` writes) a JSON document: each variant's upload size, both directions'
recall and rsum, and ``i2t_r10`` side by side (image→text R@10: an uploaded photo ranking captions).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from .augment import jpeg_round_trip
from .config import Config
from .data import load_dataset
from .evaluate import Served, add_data_args, apply_data_args


@dataclass(frozen=True)
class Upload:
    """A split's image as uploaded at ``width``×``height``: resized (bilinear) from the stored copy
    and, with ``quality``, encoded as a JPEG of that quality (0: lossless)."""
    name: str
    width: int
    height: int
    quality: int = 0

    def __call__(self, image_id: str, im: Image.Image) -> Image.Image:
        out = im.resize((self.width, self.height), Image.BILINEAR)
        return jpeg_round_trip(out, self.quality) if self.quality else out

    def describe(self) -> dict:
        return {"width": self.width, "height": self.height, "jpeg_quality": self.quality or None}


#: A phone photo: 12 megapixels (4:3), JPEG quality 85.
PHONE = Upload("phone", 3024, 2268, 85)


def parse_aspect(text: str) -> float:
    """Width over height: "3:2" → 1.5, "0.75" → 0.75."""
    w, sep, h = text.partition(":")
    value = float(w) / float(h) if sep else float(w)
    if not value > 0:
        raise ValueError(f"not an aspect ratio: {text!r}")
    return value


def resized(width: int, aspect: float, quality: int = 0) -> Upload:
    """An upload ``width`` wide with ``aspect`` = width / height (200, 1.5 → 200×133)."""
    height = max(1, round(width / aspect))
    return Upload(f"{width}x{height}" + (f"-q{quality}" if quality else ""), width, height, quality)


def uploads(args) -> list[Upload]:
    """The uploads the flags ask for: the resized one (--resize-width), then the phone photo (--phone)."""
    out = []
    if args.resize_width:
        out.append(resized(args.resize_width, parse_aspect(args.aspect), args.jpeg_quality))
    if args.phone:
        out.append(PHONE)
    return out


def measure(export: Path, ds, split: str, variants: list[Upload], threads: int = 2) -> dict:
    """The split as stored (``copy``) and as each upload, ranked as served by ``export``."""
    served = Served(export, ds, threads)
    out = {"export": str(export), "split": split, "dataset_version": ds.version,
           "input": [served.spec["width"], served.spec["height"]], "variants": {}}
    for v in [None, *variants]:
        t0 = time.time()
        m = served.metrics(split, v)
        out["variants"]["copy" if v is None else v.name] = {
            "upload": v.describe() if v is not None else "as stored", **m, "eval_s": round(time.time() - t0, 1)}
    out["i2t_r10"] = {name: m["i2t"]["r10"] for name, m in out["variants"].items()}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--export", required=True, help="an export folder (image_encoder.onnx, preprocess.json, …)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--resize-width", type=int, default=0, help="also measure uploads this many pixels wide")
    ap.add_argument("--aspect", default="3:2", help="their aspect ratio, width:height (or width/height)")
    ap.add_argument("--jpeg-quality", type=int, default=0, help="encode them as JPEGs of this quality (0: lossless)")
    ap.add_argument("--phone", action="store_true", help=f"also measure phone photos ({PHONE.width}×{PHONE.height}, "
                                                         f"JPEG quality {PHONE.quality})")
    ap.add_argument("--out", default="", help="also write the JSON document here")
    ap.add_argument("--num-threads", type=int, default=2)
    add_data_args(ap)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.num_threads)
    cfg = Config()
    if not apply_data_args(cfg, args):
        ap.error("name the dataset (--flickr8k-dir, or --store-dir / --dataset-version)")
    try:
        variants = uploads(args)
    except ValueError as e:
        ap.error(str(e))
    result = measure(Path(args.export), load_dataset(cfg), args.split, variants, args.num_threads)
    text = json.dumps(result, indent=2) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
