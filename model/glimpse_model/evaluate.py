"""Evaluate a trained run with the standard retrieval protocol on any split.

    cd model
    uv run python -m glimpse_model.evaluate --run-dir runs/f8k-pre --split test \
        --flickr8k-dir ../../shared/datasets/flickr8k

    # the exported ONNX models instead of the PyTorch checkpoint (same numbers ± 1e-4):
    uv run python -m glimpse_model.evaluate --run-dir runs/f8k-pre --split test \
        --flickr8k-dir ../../shared/datasets/flickr8k --onnx runs/f8k-pre/export

t2i: each caption ranks all images of the split; i2t: each image ranks all captions and
scores a hit when any of its own captions is within K.  Writes ``<run-dir>/metrics.json``
(``{"split", "t2i": {r1,r5,r10,medr,meanr}, "i2t": {...}, "rsum", ...}``) and
``<run-dir>/metrics_<split>.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .config import Config
from .data import load_dataset, load_tokenizer
from .features import Transform, load_pixels, view_grids
from .encode import encode_grids, encode_images
from .metrics import recall_metrics
from .model import GlimpseModel, build_backbone
from .querybank import bank_items, gallery_bias, read_bank

DATA_KEYS = ("source", "flickr8k_dir", "store", "store_dir", "bucket", "dataset", "dataset_version")


def add_data_args(ap: argparse.ArgumentParser) -> None:
    """The dataset flags evaluate and export share (default: the run's own dataset)."""
    for k in DATA_KEYS:
        ap.add_argument("--" + k.replace("_", "-"), default=None)


def apply_data_args(cfg, args) -> bool:
    """Points cfg at the dataset the flags name; False when they name none."""
    for k in DATA_KEYS:
        if getattr(args, k) is not None:
            setattr(cfg, k, getattr(args, k))
    if args.flickr8k_dir:
        cfg.source = "flickr8k-dir"
    elif args.store_dir or args.dataset_version:
        cfg.source = "store"
    else:
        return False
    return True


class Encode:
    """Embeddings of a split's images (cached grids, the full PyTorch model, or image_encoder.onnx)
    and of caption texts (PyTorch or text_encoder.onnx)."""

    def __init__(self, model, cfg, ds, tok, spec, isess=None, tsess=None, cache: bool = True):
        self.model, self.cfg, self.ds, self.tok, self.spec = model, cfg, ds, tok, spec
        self.isess, self.tsess, self.cache = isess, tsess, cache

    @torch.no_grad()
    def images(self, name: str, ids: list[str], transform: Transform | None = None) -> torch.Tensor:
        """``transform`` (image_encoder.onnx only): each image goes through it first, as an upload
        of another size would (robustness.py)."""
        model, ds, spec = self.model, self.ds, self.spec
        if self.isess is not None:
            return torch.cat([torch.from_numpy(self.isess.run(None, {"pixels": load_pixels(
                ds, ids[i:i + 32], spec, transform=transform).numpy()})[0]) for i in range(0, len(ids), 32)])
        if transform is not None:
            raise ValueError("transformed images are measured through an export (image_encoder.onnx)")
        cpu = torch.device("cpu")
        if not self.cache:
            return encode_images(model, ds, ids, spec, cpu, batch=32)
        grids, _ = view_grids(self.cfg, model.backbone, ds, name, ids, spec, cpu, model.tta_hflip, model.tta_zoom)
        return encode_grids(model, grids[0], cpu, views=grids[1:])

    @torch.no_grad()
    def captions(self, caps: list[str]) -> torch.Tensor:
        out = []
        for i in range(0, len(caps), 512):
            tid, ln = self.tok.batch(caps[i:i + 512])
            out.append(torch.from_numpy(self.tsess.run(None, {"token_ids": tid, "lengths": ln})[0])
                       if self.tsess is not None else self.model.encode_text(torch.from_numpy(tid), torch.from_numpy(ln)))
        return torch.cat(out)

    def query_bank(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(image bank, caption bank) embeddings of the run's train-split query bank."""
        ids, caps = bank_items(self.ds, self.cfg)
        return self.images("qbank", ids), self.captions(caps)


def split_items(ds, split: str) -> tuple[list[str], list[str], np.ndarray]:
    """(image ids, captions, the image index of each caption) of a split's captioned images."""
    ids = [i for i in ds.splits[split] if ds.captions.get(i)]
    caps, owner = [], []
    for n, iid in enumerate(ids):
        for c in ds.captions[iid]:
            caps.append(c)
            owner.append(n)
    return ids, caps, np.array(owner)


def onnx_sessions(folder, threads: int = 2):
    """(image, text) onnxruntime sessions of an export folder, on the CPU."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    d = Path(folder)
    return tuple(ort.InferenceSession(str(d / f), so, providers=["CPUExecutionProvider"])
                 for f in ("image_encoder.onnx", "text_encoder.onnx"))


class Served:
    """A dataset's splits ranked the way the Ranking service ranks with an export folder: its ONNX
    encoders, its tokenizer and preprocessing and, when it ships one, its query bank (nothing from
    PyTorch or the run's config). A split's captions are embedded once, whatever its images go through."""

    def __init__(self, folder, ds, threads: int = 2):
        folder = Path(folder)
        isess, tsess = onnx_sessions(folder, threads)
        self.spec = json.loads((folder / "preprocess.json").read_text())
        self.ds, self.bank = ds, read_bank(folder)
        self.enc = Encode(None, None, ds, load_tokenizer(folder / "vocab.json"), self.spec, isess, tsess)
        self._captions: dict[str, torch.Tensor] = {}

    def metrics(self, split: str, transform: Transform | None = None) -> dict:
        """Recall of ``split``, each of its images first through ``transform`` when given."""
        ids, caps, owner = split_items(self.ds, split)
        if split not in self._captions:
            self._captions[split] = self.enc.captions(caps)
        ie, te = self.enc.images(split, ids, transform), self._captions[split]
        if self.bank is None:
            m, ranking = recall_metrics(ie, te, owner), "cosine"
        else:
            beta, b_img, b_txt = self.bank
            ib, cb = gallery_bias(b_img, b_txt, ie, te, beta)
            m, ranking = recall_metrics(ie, te, owner, img_bias=ib, txt_bias=cb), f"cosine + query bank (beta {beta:g})"
        return {"split": split, "dataset_version": self.ds.version, **m, "ranking": ranking}


def served_metrics(folder, ds, split: str, threads: int = 2) -> dict:
    """A split ranked as served with an export folder (``Served``). Promotion compares models with
    this (promotion.py)."""
    return Served(folder, ds, threads).metrics(split)


def load_run(run_dir: Path, device="cpu"):
    best = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=False)
    cfg = Config.from_record(best["config"])
    tok = load_tokenizer(run_dir / "vocab.json")
    backbone, _ = build_backbone(cfg.backbone, "none")
    model = GlimpseModel(cfg, len(tok), backbone, backbone.out_channels)
    model.load_state_dict(best["model"])
    return model.to(device).eval(), cfg, tok, best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--onnx", default="", help="evaluate the exported ONNX models in this folder")
    ap.add_argument("--no-cache", action="store_true", help="run the backbone instead of the feature cache")
    ap.add_argument("--out", default="", help="metrics file (default <run-dir>/metrics.json)")
    ap.add_argument("--num-threads", type=int, default=2)
    add_data_args(ap)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.num_threads)
    run_dir = Path(args.run_dir)
    model, cfg, tok, best = load_run(run_dir)
    apply_data_args(cfg, args)
    ds = load_dataset(cfg)
    ids, caps, owner = split_items(ds, args.split)
    spec = json.loads((run_dir / "preprocess.json").read_text())
    t0 = time.time()
    isess = tsess = None
    if args.onnx:
        isess, tsess = onnx_sessions(args.onnx, args.num_threads)
        mode = f"onnx:{args.onnx}"
    else:
        mode = "pytorch:full" if args.no_cache else "pytorch:cached-grid"
    enc = Encode(model, cfg, ds, tok, spec, isess, tsess, cache=not args.no_cache)
    ie, te = enc.images(args.split, ids), enc.captions(caps)
    m = recall_metrics(ie, te, owner)
    if cfg.qb_beta > 0:
        # query-bank normalisation: per-item biases from train-split queries (querybank.py)
        bank = read_bank(args.onnx) if args.onnx else None
        if args.onnx and bank is None:
            raise SystemExit(f"{args.onnx} has no querybank.json but the run sets qb_beta")
        if bank is None:
            bank = (cfg.qb_beta, *enc.query_bank())
        beta, b_img, b_txt = bank
        plain = {k: m[k] for k in ("t2i", "i2t", "rsum")}
        ib, cb = gallery_bias(b_img, b_txt, ie, te, beta)
        m = recall_metrics(ie, te, owner, img_bias=ib, txt_bias=cb)
        m["qbnorm"] = {"beta": beta, "bank_images": len(b_img), "bank_captions": len(b_txt), "without": plain}
    out = {"split": args.split, **m, "mode": mode, "dataset": ds.source, "dataset_version": ds.version,
           "checkpoint": {"phase": best["phase"], "epoch": best["epoch"]}, "eval_s": round(time.time() - t0, 1)}
    text = json.dumps(out, indent=2) + "\n"
    target = Path(args.out) if args.out else run_dir / "metrics.json"
    target.write_text(text)
    if not args.out:
        (run_dir / f"metrics_{args.split}.json").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
