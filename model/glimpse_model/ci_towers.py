"""The small towers CI trains: fast on a CPU, and usable with no pretrained weights at all.

They exist for CI and the tests — configs/tiny_ci.json (the cluster's end-to-end training run),
the model's pytest suite and the Training service's tests with the real trainer — not for a model
anyone should serve: the shipped recipe's towers are pretrained.py's (EfficientNet-Lite0 +
all-MiniLM-L6-v2). model.py builds these when a config names them:

* ``backbone: mobilenet_v3_small`` — torchvision's MobileNetV3-Small (``backbone_weights: none``:
  random weights, no download);
* ``backbone: tiny`` — a random 3-layer CNN;
* ``text_encoder: bilstm`` — a word embedding (vocabulary built from the training captions,
  ``data.Tokenizer``) + (bi)LSTM + masked attention pooling.  The backward direction runs on each
  sequence reversed *within its length*, so a caption's embedding does not depend on how much
  right-padding its batch has (also in ONNX).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .model import length_mask, masked_mean

#: The ``backbone`` values of this module.
CI_BACKBONES = ("mobilenet_v3_small", "tiny")


# --------------------------------------------------------------------------------------
# Backbones
# --------------------------------------------------------------------------------------
class TinyBackbone(nn.Module):
    """``tiny``: a random 3-layer CNN, the tests' smallest backbone (stride 16, ``width`` channels)."""

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
    """``mobilenet_v3_small``: torchvision's MobileNetV3-Small features (13 blocks, 576 channels);
    ImageNet weights when torchvision can fetch them (``auto``), random with ``none`` (what CI runs)."""

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


def build_ci_backbone(name: str, weights: str = "auto") -> tuple[nn.Module, str]:
    """(backbone, weights_source) of one of CI_BACKBONES."""
    if name == "mobilenet_v3_small":
        net = TorchvisionV3Small(weights)
        return net, net.weights_source
    if name == "tiny":
        torch.manual_seed(0)
        return TinyBackbone(), "random-init(seed0)"
    raise ValueError(f"not a CI backbone: {name!r} ({' | '.join(CI_BACKBONES)})")


# --------------------------------------------------------------------------------------
# Text tower
# --------------------------------------------------------------------------------------
def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse x[n, :len_n] along dim 1, leaving the padding where it is. x: [N,L,E]."""
    L = x.shape[1]
    t = torch.arange(L, device=x.device).unsqueeze(0)          # 1, L
    ln = lengths.unsqueeze(1)                                   # N, 1
    idx = torch.where(t < ln, ln - 1 - t, t)                    # N, L
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[2]))


class BiLSTMText(nn.Module):
    """``bilstm``: word embedding + (bi)LSTM layers + masked attention and mean pooling + projection."""

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


def build_bilstm(cfg, vocab_size: int) -> BiLSTMText:
    """The ``bilstm`` text tower a config describes."""
    return BiLSTMText(vocab_size, cfg.embed_dim, cfg.word_dim, cfg.text_hidden, cfg.bidirectional,
                      cfg.text_layers, cfg.dropout, cfg.word_dropout, proj_hidden=cfg.text_proj_hidden)
