"""Contrastive losses of the image–text space (the trainer's ``--loss``).

    cd model
    uv run --frozen pytest -q tests/test_loss.py

A batch is B captions with the embedding of each one's image: row i of ``img`` is the image of
caption i, and an image may appear in several rows (two of its captions in one batch).  Those
other rows of the same image are not negatives: they are left out of the softmax (InfoNCE) and
of the hardest-negative search (VSE++).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

def infonce_loss(sim: torch.Tensor, excl: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP): the mean of the caption→image and image→caption cross-entropies
    over ``sim`` scaled by exp(logit_scale) (at most 100), with the entries ``excl`` masked out."""
    scale = logit_scale.exp().clamp(max=100.0)
    logits = (sim * scale).masked_fill(excl, float("-inf"))
    target = torch.arange(len(sim), device=sim.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def vsepp_loss(sim: torch.Tensor, same: torch.Tensor, margin: float) -> torch.Tensor:
    """VSE++ hinge on the hardest negative, both directions: mean over the batch of
    max(0, margin + hardest negative − positive); ``same`` marks every pair of one image
    (the diagonal included), none of which is a negative."""
    pos = sim.diag()
    neg = sim.masked_fill(same, float("-inf"))
    cost_t = (margin + neg.max(dim=1).values - pos).clamp(min=0)   # image → hardest caption
    cost_i = (margin + neg.max(dim=0).values - pos).clamp(min=0)   # caption → hardest image
    return cost_t.mean() + cost_i.mean()


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, img_ids: torch.Tensor,
                     logit_scale: torch.Tensor, kind: str = "infonce", margin: float = 0.2,
                     vsepp_weight: float = 1.0) -> torch.Tensor:
    """img/txt: [B,D] normalised, row i of img is the image of caption i (images may repeat,
    ``img_ids`` says which); ``kind``: infonce, vsepp or both (InfoNCE + vsepp_weight·VSE++)."""
    sim = img @ txt.t()                                              # B x B
    same = img_ids.unsqueeze(0) == img_ids.unsqueeze(1)
    eye = torch.eye(len(img_ids), dtype=torch.bool, device=sim.device)
    total = sim.new_zeros(())
    if kind in ("infonce", "both"):
        total = total + infonce_loss(sim, same & ~eye, logit_scale)
    if kind in ("vsepp", "both"):
        total = total + (vsepp_weight if kind == "both" else 1.0) * vsepp_loss(sim, same, margin)
    return total
