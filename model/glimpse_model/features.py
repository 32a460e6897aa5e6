"""Frozen-backbone feature cache (phase 1): the backbone runs once per image.

Grids ``[N, C, h, w]`` (float16) are cached under
``<cache_dir>/features/<backbone>-<weights hash>-<dataset fingerprint>-<size>[-upto<k>]/<split><view>.pt``
(``-upto<k>``: the input of block k, for phase 2 on cached activations; ``<size>``: the input side;
``<view>``: none for the image, ``_flip`` its mirror, ``_zoom<z>`` its centre zoom, ``_aug<k>-<settings>-seed<s>``
the k-th upload round trip of augment.py drawn with the run's seed): ``cache_path``.
"""
from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from .augment import UploadAugment
from .data import image_to_array, open_rgb, squash


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


#: An image's pixels before preprocessing: (image id, the decoded image at its own size) → an
#: image of any size, squashed to the input afterwards (an upload round trip, robustness.py's uploads).
Transform = Callable[[str, Image.Image], Image.Image]


def load_pixels(ds, ids: list[str], spec: dict, flip: bool = False, transform: Transform | None = None) -> torch.Tensor:
    """The images ``ids`` preprocessed as ``spec`` says (squashed to the input, normalised), each
    first through ``transform`` when given, then mirrored with ``flip``."""
    def one(iid: str) -> np.ndarray:
        im = open_rgb(ds.read_image(iid))
        if transform is not None:
            im = transform(iid, im)
        im = squash(im, spec["width"])
        if flip:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        return image_to_array(im, spec)
    arrs = list(_pool().map(one, ids)) if len(ids) > 1 else [one(i) for i in ids]
    return torch.from_numpy(np.stack(arrs))


@dataclass(frozen=True)
class AugmentView:
    """The ``k``-th cached upload round trip (augment.py) of every image, drawn with ``seed``."""
    augment: UploadAugment
    k: int
    seed: int

    def name(self) -> str:
        return f"_aug{self.k}-{self.augment.key()}-seed{self.seed}"

    def transform(self, size: int) -> Transform:
        return lambda iid, im: self.augment.variant(im, size, self.seed, iid, self.k)


@torch.no_grad()
def compute_grids(backbone, ds, ids: list[str], spec: dict, device, flip: bool = False,
                  batch: int = 0, log=None, stop: int | None = None, zoom: float = 0.0,
                  transform: Transform | None = None) -> torch.Tensor:
    from .model import zoom_view
    batch = batch or (256 if torch.device(device).type == "cuda" else 16)
    backbone = backbone.eval().to(device)
    out = []
    t0 = time.time()
    for i in range(0, len(ids), batch):
        x = load_pixels(ds, ids[i:i + batch], spec, flip, transform).to(device)
        if zoom:
            x = zoom_view(x, zoom)
        out.append(backbone.features(x, 0, stop).to("cpu", torch.float16))
        if log is not None:
            log(done=min(i + batch, len(ids)), total=len(ids), elapsed=time.time() - t0)
    return torch.cat(out)


def cache_path(cfg, backbone, ds, split: str, spec: dict, flip: bool = False, zoom: float = 0.0,
               stop: int | None = None, augment: AugmentView | None = None) -> Path:
    """Where a view's grids are cached: the folder names the backbone, its weights, the dataset and
    the input size, the file the split and the view (module docstring)."""
    key = f"{cfg.backbone}-{backbone_fingerprint(backbone, stop)}-{ds.fingerprint()}-{spec['width']}"
    if stop is not None:
        key += f"-upto{stop}"
    view = ("_flip" if flip else "") + (f"_zoom{zoom:g}" if zoom else "") + (augment.name() if augment else "")
    return Path(cfg.cache_dir) / "features" / key / f"{split}{view}.pt"


def cached_grids(cfg, backbone, ds, split: str, ids: list[str], spec: dict, device, flip=False,
                 log=None, stop: int | None = None, zoom: float = 0.0,
                 augment: AugmentView | None = None) -> tuple[torch.Tensor, float]:
    """Return (grids, seconds spent computing; 0 when read from the cache).  ``stop``: cache the
    input of backbone block ``stop`` instead of the final grid (phase 2 on cached activations)."""
    path = cache_path(cfg, backbone, ds, split, spec, flip, zoom, stop, augment)
    if path.is_file():
        d = torch.load(path, map_location="cpu")
        if d["ids"] == ids:
            return d["grids"], 0.0
    t0 = time.time()
    grids = compute_grids(backbone, ds, ids, spec, device, flip, log=log, stop=stop, zoom=zoom,
                          transform=augment.transform(spec["width"]) if augment else None)
    dt = time.time() - t0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"ids": ids, "grids": grids}, tmp)
    tmp.replace(path)
    return grids, dt


def view_grids(cfg, backbone, ds, split: str, ids: list[str], spec: dict, device, hflip: bool,
               zoom: float = 0.0, log=None, stop: int | None = None,
               augment: UploadAugment | None = None, augment_views: int = 0) -> tuple[list[torch.Tensor], float]:
    """Cached activations of each view of ``ids``: the image, then its mirror (``hflip``), then its
    centre zoom (``zoom``), the order embed_pixels averages them in, then ``augment_views`` upload
    round trips (``augment``, drawn with cfg.seed: training's variants); and the seconds computed."""
    views: list[tuple[bool, float, AugmentView | None]] = \
        [(False, 0.0, None)] + ([(True, 0.0, None)] if hflip else []) + ([(False, zoom, None)] if zoom else [])
    if augment is not None:
        views += [(False, 0.0, AugmentView(augment, k, cfg.seed)) for k in range(augment_views)]
    out, secs = [], 0.0
    for flip, z, aug in views:
        g, dt = cached_grids(cfg, backbone, ds, split, ids, spec, device, flip, log=log, stop=stop, zoom=z,
                             augment=aug)
        out.append(g)
        secs += dt
    return out, secs
