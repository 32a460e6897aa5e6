"""Standard cross-modal retrieval protocol (R@1/5/10, median rank, both directions)."""
from __future__ import annotations

import numpy as np
import torch


def recall_metrics(img_emb: torch.Tensor, txt_emb: torch.Tensor, txt_img: np.ndarray,
                   ks=(1, 5, 10), img_bias: torch.Tensor | None = None,
                   txt_bias: torch.Tensor | None = None) -> dict:
    """img_emb [Ni,D], txt_emb [Nt,D] (L2-normalised); txt_img[j] = image index of caption j.

    t2i: for every caption, rank all images; hit if its own image is within K.
    i2t: for every image, rank all captions; hit if any of its captions is within K.
    Ranks are 1-based; medr = floor(median(rank-1)) + 1 (the VSE/VSE++ convention).
    ``img_bias`` / ``txt_bias``: per-item scores added when that side is the one ranked
    (query-bank normalisation, querybank.py).
    """
    sim = (img_emb.float() @ txt_emb.float().t()).numpy()          # Ni x Nt
    sim_i2t = sim if txt_bias is None else sim + txt_bias.float().numpy()[None, :]
    if img_bias is not None:
        sim = sim + img_bias.float().numpy()[:, None]
    txt_img = np.asarray(txt_img)
    # ties count against the query (pessimistic), so a degenerate model cannot score well
    # t2i
    gt = sim[txt_img, np.arange(sim.shape[1])]                       # Nt
    t2i_rank = (sim >= gt[None, :]).sum(0)
    # i2t: rank of the image's best-scoring own caption among the other captions
    own = txt_img[None, :] == np.arange(sim.shape[0])[:, None]
    best_own = np.where(own, sim_i2t, -np.inf).max(1)
    i2t_rank = ((sim_i2t >= best_own[:, None]) & ~own).sum(1) + 1

    def summary(r: np.ndarray) -> dict:
        d = {f"r{k}": round(float((r <= k).mean() * 100), 2) for k in ks}
        d["medr"] = float(np.floor(np.median(r - 1)) + 1)
        d["meanr"] = round(float(r.mean()), 2)
        return d

    t2i, i2t = summary(t2i_rank), summary(i2t_rank)
    rsum = round(sum(t2i[f"r{k}"] + i2t[f"r{k}"] for k in ks), 2)
    return {"t2i": t2i, "i2t": i2t, "rsum": rsum, "n_images": int(sim.shape[0]),
            "n_captions": int(sim.shape[1])}
