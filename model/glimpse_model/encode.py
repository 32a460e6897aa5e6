"""Embeddings in bulk from what training and evaluation hold: captions (padded token ids, or what
a pretrained text tower's frozen bottom gives them, cached once) and images (cached backbone
activations, or pixels through the whole model). train.py's dev evaluation and evaluate.py both
use these.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoints import atomic_save
from .features import load_pixels


@torch.no_grad()
def encode_texts(model, tids: torch.Tensor, lens: torch.Tensor, device, batch: int = 512,
                 cache: torch.Tensor | None = None, start: int = 0) -> torch.Tensor:
    """Caption embeddings; with ``cache`` (``text_cache`` of these captions) from the layers at
    ``start`` up instead of from the token ids."""
    model.eval()
    out = []
    for i in range(0, len(tids), batch):
        ln = lens[i:i + batch]
        if cache is not None:
            out.append(encode_cached_text(model, cache[i:i + batch], ln, start, device).float().cpu())
        else:
            out.append(model.encode_text(tids[i:i + batch, : int(ln.max())].to(device), ln.to(device)).float().cpu())
    return torch.cat(out)


@torch.no_grad()
def text_cache(model, tids: torch.Tensor, lens: torch.Tensor, start: int, device, batch: int = 256) -> torch.Tensor:
    """What a pretrained text tower's frozen bottom gives each caption, computed once: the hidden
    states entering layer ``start`` (fp16, [N,L,H]) or, with every layer frozen, the pooled
    sentence vector ([N,H])."""
    model.eval()
    out = []
    for i in range(0, len(tids), batch):
        ln = lens[i:i + batch].to(device)
        h = model.text.hidden_at(tids[i:i + batch, : int(ln.max())].to(device), ln, start)
        if start >= model.text.layers:
            out.append(model.text.pool(h, ln).float().cpu())
        else:
            out.append(F.pad(h, (0, 0, 0, tids.shape[1] - h.shape[1])).half().cpu())
    return torch.cat(out)


def cached_text(cfg, model, tok, tids: torch.Tensor, lens: torch.Tensor, start: int, device) -> torch.Tensor:
    """``text_cache`` kept in the feature cache folder, keyed by the tokenizer, the layer, the token
    ids and the frozen bottom's weights (the first 4 KiB of each tensor: the bottom is never trained,
    so it only differs between packages, and that shows in every tensor)."""
    import hashlib
    h = hashlib.sha256(f"{cfg.text_encoder}|{start}|{tok.tokens[0]}".encode())
    h.update(tids.numpy().tobytes())
    sd = model.text.bert.state_dict()
    for k in sorted(sd):
        if k.startswith("embeddings.") or any(k.startswith(f"encoder.layer.{i}.") for i in range(start)):
            h.update(sd[k].flatten()[:1024].float().numpy().tobytes())
    path = Path(cfg.cache_dir) / "text" / f"{h.hexdigest()[:24]}.pt"
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    out = text_cache(model, tids, lens, start, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(out, path)
    return out


def encode_cached_text(model, cache: torch.Tensor, lens: torch.Tensor, start: int, device) -> torch.Tensor:
    h = cache if cache.dim() == 2 else cache[:, : int(lens.max())].float()
    return model.text.forward_from(h.to(device), lens.to(device), start)


@torch.no_grad()
def encode_grids(model, grids: torch.Tensor, device, batch: int = 256,
                 views: list[torch.Tensor] = ()) -> torch.Tensor:
    """Embeddings of cached grids; with the grids of other views (mirror, zoom), view-averaged."""
    model.eval()
    return torch.cat([model.encode_grid(grids[i:i + batch].to(device),
                                        *[v[i:i + batch].to(device) for v in views]).float().cpu()
                      for i in range(0, len(grids), batch)])


@torch.no_grad()
def encode_images(model, ds, ids, spec, device, batch: int = 64) -> torch.Tensor:
    model.eval()
    return torch.cat([model.encode_image(load_pixels(ds, ids[i:i + batch], spec).to(device)).float().cpu()
                      for i in range(0, len(ids), batch)])
