"""Frozen-backbone feature cache (phase 1): the backbone runs once per image.

Grids ``[N, C, h, w]`` (float16) are cached under
``<cache_dir>/features/<backbone>-<weights hash>-<dataset fingerprint>-<size>[-upto<k>]/<split>[_flip].pt``
(``-upto<k>``: the input of block k, for phase 2 on cached activations).
"""
from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .data import decode_image, image_to_array


def backbone_fingerprint(backbone: torch.nn.Module, stop: int | None = None) -> str:
    """Hash of the weights the cached activations depend on (with ``stop``: the blocks below it)."""
    h = hashlib.sha256()
    top = tuple(f"blocks.{i}." for i in range(stop, len(backbone.blocks))) if stop is not None else ()
    for k, v in sorted(backbone.state_dict().items()):
        if stop is not None and k.startswith(top):
            continue
        h.update(k.encode())
        h.update(v.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()[:12]


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    # PIL decodes with the GIL released, so threads scale on a many-core GPU host
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1))
    return _POOL


def load_pixels(ds, ids: list[str], spec: dict, flip: bool = False) -> torch.Tensor:
    def one(iid: str) -> np.ndarray:
        im = decode_image(ds.read_image(iid), spec["width"])
        if flip:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        return image_to_array(im, spec)
    arrs = list(_pool().map(one, ids)) if len(ids) > 1 else [one(i) for i in ids]
    return torch.from_numpy(np.stack(arrs))


@torch.no_grad()
def compute_grids(backbone, ds, ids: list[str], spec: dict, device, flip: bool = False,
                  batch: int = 0, log=None, stop: int | None = None, zoom: float = 0.0) -> torch.Tensor:
    from .model import zoom_view
    batch = batch or (256 if torch.device(device).type == "cuda" else 16)
    backbone = backbone.eval().to(device)
    out = []
    t0 = time.time()
    for i in range(0, len(ids), batch):
        x = load_pixels(ds, ids[i:i + batch], spec, flip).to(device)
        if zoom:
            x = zoom_view(x, zoom)
        out.append(backbone.features(x, 0, stop).to("cpu", torch.float16))
        if log is not None:
            log(done=min(i + batch, len(ids)), total=len(ids), elapsed=time.time() - t0)
    return torch.cat(out)


def cached_grids(cfg, backbone, ds, split: str, ids: list[str], spec: dict, device, flip=False,
                 log=None, stop: int | None = None, zoom: float = 0.0) -> tuple[torch.Tensor, float]:
    """Return (grids, seconds spent computing; 0 when read from the cache).  ``stop``: cache the
    input of backbone block ``stop`` instead of the final grid (phase 2 on cached activations)."""
    key = f"{cfg.backbone}-{backbone_fingerprint(backbone, stop)}-{ds.fingerprint()}-{spec['width']}"
    if stop is not None:
        key += f"-upto{stop}"
    view = ("_flip" if flip else "") + (f"_zoom{zoom:g}" if zoom else "")
    path = Path(cfg.cache_dir) / "features" / key / f"{split}{view}.pt"
    if path.is_file():
        d = torch.load(path, map_location="cpu")
        if d["ids"] == ids:
            return d["grids"], 0.0
    t0 = time.time()
    grids = compute_grids(backbone, ds, ids, spec, device, flip, log=log, stop=stop, zoom=zoom)
    dt = time.time() - t0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"ids": ids, "grids": grids}, tmp)
    tmp.replace(path)
    return grids, dt


def view_grids(cfg, backbone, ds, split: str, ids: list[str], spec: dict, device, hflip: bool,
               zoom: float = 0.0, log=None, stop: int | None = None) -> tuple[list[torch.Tensor], float]:
    """Cached activations of each view of ``ids``: the image, then its mirror (``hflip``), then its
    centre zoom (``zoom``), the order embed_pixels averages them in; and the seconds computed."""
    out, secs = [], 0.0
    for flip, z in [(False, 0.0)] + ([(True, 0.0)] if hflip else []) + ([(False, zoom)] if zoom else []):
        g, dt = cached_grids(cfg, backbone, ds, split, ids, spec, device, flip, log=log, stop=stop, zoom=z)
        out.append(g)
        secs += dt
    return out, secs
