"""Model: image backbone + image head, text encoder, shared 256-d L2-normalised space.

* Towers: ``build_backbone`` / ``build_text_encoder`` pick them by the config's ``backbone`` and
  ``text_encoder``. The shipped recipe's are pretrained.py's (``efficientnet_lite1``, ``minilm_l6``; also
  ``efficientnet_lite0`` / ``efficientnet_lite2``);
  ci_towers.py holds the small ones CI trains (``mobilenet_v3_small``, ``tiny``, ``bilstm``).
* ``ImageHead`` — pooling over the backbone's spatial grid (mean or multi-head attention)
  + projection.  In phase 1 it runs on cached grids, so the backbone is never re-run.
* ``GlimpseModel`` — both towers and the learned temperature; test-time views (mirror, centre
  zoom) averaged inside the image encoder; ``ImageEncoderExport`` / ``TextEncoderExport`` are
  what the two ONNX files hold.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# --------------------------------------------------------------------------------------
# Towers
# --------------------------------------------------------------------------------------
def build_backbone(name: str, weights: str = "auto") -> tuple[nn.Module, str]:
    """Return (backbone exposing .features(x) → [N,C,h,w] and .blocks, weights_source)."""
    from .pretrained import LITE_VARIANTS, EfficientNetLite
    if name in LITE_VARIANTS:
        net = EfficientNetLite(name, weights)
        return net, net.weights_source
    from .ci_towers import CI_BACKBONES, build_ci_backbone
    if name in CI_BACKBONES:
        return build_ci_backbone(name, weights)
    raise ValueError(f"unknown backbone {name!r} ({' | '.join(LITE_VARIANTS + CI_BACKBONES)})")


# --------------------------------------------------------------------------------------
# Heads
# --------------------------------------------------------------------------------------
class ImageHead(nn.Module):
    """Grid features [N,C,h,w] → L2-normalised embedding [N,D]."""

    def __init__(self, in_ch: int, dim: int = 256, hidden: int = 1024, kind: str = "attn",
                 heads: int = 4, dropout: float = 0.1, attn_hidden: int = 256, grid_dropout: float = 0.0):
        super().__init__()
        self.kind = kind
        self.grid_dropout = grid_dropout
        self.norm = nn.LayerNorm(in_ch)
        feat = in_ch
        if kind == "attn":
            self.att = (nn.Sequential(nn.Linear(in_ch, attn_hidden), nn.Tanh(), nn.Linear(attn_hidden, heads))
                        if attn_hidden > 0 else nn.Linear(in_ch, heads))
            feat = in_ch * (heads + 1)
        elif kind != "mean":
            raise ValueError(kind)
        self.mlp = nn.Sequential(nn.Linear(feat, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim)) if hidden > 0 else None
        self.lin = nn.Linear(feat, dim)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        x = grid.flatten(2).transpose(1, 2)          # N, hw, C
        x = self.norm(x)
        if self.training and self.grid_dropout > 0:
            # drop whole grid cells (a cheap stand-in for random crops/occlusion on cached grids)
            keep = (torch.rand(x.shape[:2], device=x.device) >= self.grid_dropout).to(x.dtype)
            keep[:, 0] = torch.where(keep.sum(1) == 0, 1.0, keep[:, 0])
            pooled = (x * keep.unsqueeze(-1)).sum(1) / keep.sum(1, keepdim=True)
        else:
            pooled = x.mean(dim=1)
        if self.kind == "attn":
            a = torch.softmax(self.att(x), dim=1)   # N, hw, K
            ap = torch.einsum("nsk,nsc->nkc", a, x).flatten(1)
            pooled = torch.cat([pooled, ap], dim=1)
        z = self.lin(pooled)
        if self.mlp is not None:
            z = z + self.mlp(pooled)
        return F.normalize(z, dim=-1)


def length_mask(lengths: torch.Tensor, L: int) -> torch.Tensor:
    """[N,L] bool: True for the first lengths[n] positions of row n (the real tokens)."""
    return torch.arange(L, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean of x [N,L,E] over each row's real tokens → [N,E]."""
    m = length_mask(lengths, x.shape[1]).to(x.dtype)
    return (x * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True)


def zoom_view(pixels: torch.Tensor, zoom: float) -> torch.Tensor:
    """The centre crop covering ``zoom`` of each side, resized back to the input size (bilinear;
    it commutes with the per-channel normalisation, so it may run on normalised pixels)."""
    h, w = int(pixels.shape[-2]), int(pixels.shape[-1])
    sh, sw = int(round(h * zoom)), int(round(w * zoom))
    top, left = (h - sh) // 2, (w - sw) // 2
    return F.interpolate(pixels[:, :, top:top + sh, left:left + sw], size=(h, w), mode="bilinear",
                         align_corners=False)


def tta_views(pixels: torch.Tensor, tta_hflip: bool, tta_zoom: float = 0.0) -> list[torch.Tensor]:
    """The views whose embeddings are averaged: the image, its mirror, its centre zoom."""
    views = [pixels]
    if tta_hflip:
        views.append(pixels.flip(3))
    if tta_zoom:
        views.append(zoom_view(pixels, tta_zoom))
    return views


def average_views(embs: list[torch.Tensor]) -> torch.Tensor:
    """One view: its embedding; several views of the same images: the normalised sum."""
    z = embs[0]
    for e in embs[1:]:
        z = z + e
    return F.normalize(z, dim=-1) if len(embs) > 1 else z


def embed_pixels(backbone: nn.Module, head: ImageHead, pixels: torch.Tensor, tta_hflip: bool,
                 tta_zoom: float = 0.0) -> torch.Tensor:
    views = tta_views(pixels, tta_hflip, tta_zoom)
    # test-time view averaging (mirror and/or centre zoom): one backbone pass over all views
    # stacked on the batch axis
    if len(views) == 1:
        return head(backbone.features(pixels))
    n = pixels.shape[0]
    g = backbone.features(torch.cat(views))
    return average_views([head(g[i * n:(i + 1) * n]) for i in range(len(views))])


def build_text_encoder(cfg, vocab_size: int) -> nn.Module:
    if cfg.text_encoder == "minilm_l6":
        from .pretrained import MiniLMText
        text = MiniLMText(cfg.cache_dir, cfg.embed_dim, cfg.text_proj_hidden, cfg.dropout,
                          pretrained=cfg.backbone_weights != "none")
        # only the top ``text_unfreeze`` layers train
        for p in text.bert.parameters():
            p.requires_grad_(False)
        for layer in list(text.bert.encoder.layer)[text.layers - cfg.text_unfreeze:] if cfg.text_unfreeze else []:
            for p in layer.parameters():
                p.requires_grad_(True)
        return text
    if cfg.text_encoder != "bilstm":
        raise ValueError(f"unknown text_encoder {cfg.text_encoder!r} (minilm_l6 | bilstm)")
    from .ci_towers import build_bilstm
    return build_bilstm(cfg, vocab_size)


class GlimpseModel(nn.Module):
    def __init__(self, cfg, vocab_size: int, backbone: nn.Module | None, in_ch: int):
        super().__init__()
        self.backbone = backbone
        self.image_head = ImageHead(in_ch, cfg.embed_dim, cfg.image_hidden, cfg.image_head,
                                    heads=cfg.attn_heads, dropout=cfg.dropout, attn_hidden=cfg.attn_hidden,
                                    grid_dropout=getattr(cfg, "grid_dropout", 0.0))
        self.text = build_text_encoder(cfg, vocab_size)
        self.tta_hflip = bool(getattr(cfg, "tta_hflip", False))
        self.tta_zoom = float(getattr(cfg, "tta_zoom", 0.0))
        self.grid_start: int | None = None
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.init_temperature)),
                                        requires_grad=cfg.learn_temperature)

    def encode_grid(self, grid: torch.Tensor, *views: torch.Tensor) -> torch.Tensor:
        """Embedding of cached backbone activations; with the activations of other views of the
        same images (mirror, zoom), the normalised sum over all views.  With ``grid_start`` set
        (phase 2 on cached activations) the grids are the input of backbone block
        ``grid_start`` and the top blocks run here, trainable."""
        def head(g: torch.Tensor) -> torch.Tensor:
            if self.grid_start is not None:
                g = self.backbone.features(g.float(), self.grid_start)
            return self.image_head(g.float())
        return average_views([head(g) for g in (grid, *views)])

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return embed_pixels(self.backbone, self.image_head, pixels, self.tta_hflip, self.tta_zoom)

    def encode_text(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.text(ids, lengths)


class ImageEncoderExport(nn.Module):
    """pixels [N,3,H,W] → embedding [N,256] (what image_encoder.onnx contains, mirror averaging
    and zoom averaging included when the run sets ``tta_hflip`` / ``tta_zoom``)."""

    def __init__(self, m: GlimpseModel):
        super().__init__()
        self.backbone, self.head = m.backbone, m.image_head
        self.tta_hflip, self.tta_zoom = m.tta_hflip, m.tta_zoom

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return embed_pixels(self.backbone, self.head, pixels, self.tta_hflip, self.tta_zoom)


class TextEncoderExport(nn.Module):
    def __init__(self, m: GlimpseModel):
        super().__init__()
        self.text = m.text

    def forward(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.text(token_ids, lengths)

