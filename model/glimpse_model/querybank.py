"""Query-bank normalisation (QB-Norm with the inverted softmax; Bogolin et al., CVPR 2022).

Some gallery items ("hubs") are close to very many queries and crowd the top of every ranking.
QB-Norm scores a query q against a gallery item g by

    score(q, g) = q·g + bias(g),   bias(g) = -(1/β) · log Σ_{b ∈ bank} exp(β · b·g)

where the bank holds embeddings of queries of the same modality as q, drawn from the train
split (never from the gallery being searched).  A hub is close to many bank queries, so its
bias is low.  Images are searched by text, so an image's bias uses a bank of train captions.
Captions are searched by images, so a caption's bias uses a bank of train images.  The bias
is a property of the gallery item alone: serving adds it to the item's cosine and needs no
per-query work.

The bank is fixed by the config (``qb_bank_size`` train images and as many captions from other
train images, order seeded by ``seed``).  export.py ships the bank's embeddings beside the ONNX
models (querybank.json + two float32 files) so the Ranking service computes the same biases.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch


def bank_items(ds, cfg) -> tuple[list[str], list[str]]:
    """(image ids, caption texts) of the query bank: train-split images, and one caption of each
    of as many other train images."""
    train = sorted(i for i in ds.splits.get(cfg.train_split, []) if ds.captions.get(i))
    random.Random(cfg.seed).shuffle(train)
    n = min(cfg.qb_bank_size, len(train) // 2)
    images = train[:n]
    captions = [ds.captions[i][k % len(ds.captions[i])] for k, i in enumerate(train[n:2 * n])]
    return images, captions


def item_bias(bank: torch.Tensor, items: torch.Tensor, beta: float, batch: int = 4096) -> torch.Tensor:
    """bias[i] = -(1/β) logsumexp_b(β · bank_b · items_i), in float64 for the log-sum-exp."""
    bank = bank.double()
    out = [-(torch.logsumexp(beta * (items[i:i + batch].double() @ bank.T), dim=1) / beta)
           for i in range(0, len(items), batch)]
    return torch.cat(out).float() if out else torch.zeros(0)


def gallery_bias(bank_images: torch.Tensor, bank_captions: torch.Tensor, images: torch.Tensor,
                 captions: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(image biases, caption biases): images ranked for text queries use the caption bank,
    captions ranked for image queries the image bank."""
    return item_bias(bank_captions, images, beta), item_bias(bank_images, captions, beta)


BANK_FILES = ("querybank.json", "querybank_images.f32", "querybank_captions.f32")


def write_bank(out, beta: float, images: torch.Tensor, captions: torch.Tensor, meta: dict) -> None:
    """querybank.json + the two embedding matrices as little-endian float32, row-major [N, D]."""
    out = Path(out)
    for name, m in (("images", images), ("captions", captions)):
        (out / f"querybank_{name}.f32").write_bytes(np.ascontiguousarray(m.float().numpy(), dtype="<f4").tobytes())
    doc = {"schema": "glimpse.querybank/v1", "method": "qb-norm inverted softmax", "beta": beta,
           "dim": int(images.shape[1]), "images": int(images.shape[0]), "captions": int(captions.shape[0]),
           "files": {"images": "querybank_images.f32", "captions": "querybank_captions.f32"},
           "bias": "bias(item) = -(1/beta) * ln(sum_b exp(beta * dot(bank_b, item))); images are biased with the "
                   "caption bank (text queries), captions with the image bank (image queries); "
                   "ranking score = dot(query, item) + bias(item)", **meta}
    (out / "querybank.json").write_text(json.dumps(doc, indent=1) + "\n")


def read_bank(d) -> tuple[float, torch.Tensor, torch.Tensor] | None:
    """(beta, image bank, caption bank) from an export folder, or None when it has no bank."""
    d = Path(d)
    if not (d / "querybank.json").is_file():
        return None
    doc = json.loads((d / "querybank.json").read_text())
    load = lambda f, n: torch.from_numpy(np.fromfile(d / f, dtype="<f4").reshape(n, doc["dim"]).copy())
    return (float(doc["beta"]), load(doc["files"]["images"], doc["images"]),
            load(doc["files"]["captions"], doc["captions"]))
