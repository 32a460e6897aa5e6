"""Training configuration: one dataclass holding every hyper-parameter.

Precedence (lowest → highest): dataclass defaults < JSON document < CLI flags.

The JSON document can be given as ``--config path.json``, as ``--config-json '{...}'``
or through the environment (``GLIMPSE_TRAIN_CONFIG`` = a path or an inline JSON
object) — the Training service / Kubernetes Job passes it that way.  Every field is
also a CLI flag: ``--batch-size 256``, ``--image-head attn``, ``--amp false``.

    uv run python -m glimpse_model.train --help
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import subprocess
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

MODEL_DIR = Path(__file__).resolve().parent.parent  # .../model
REPO_ROOT = MODEL_DIR.parent


@dataclass
class Config:
    # The defaults are the recipe of the model a fresh clone serves (demo/model/config.json), so a
    # bare run (`train` with no config, StartTraining {}) trains that; tests/test_config.py checks it.
    # ---- run / bookkeeping -------------------------------------------------
    run_name: str = "dev"
    out_dir: str = str(MODEL_DIR / "runs")          # run folder = out_dir/run_name
    cache_dir: str = str(MODEL_DIR / ".cache")      # frozen-feature cache
    seed: int = 1234
    device: str = "auto"                            # auto | cpu | cuda | mps
    amp: bool = True                                # mixed precision (only on CUDA)
    num_threads: int = 2                            # torch CPU threads
    num_workers: int = 0                            # DataLoader workers (phase 2 / caching)
    resume: bool = False                            # continue from run_dir/checkpoint.pt
    progress: str = "auto"                          # auto | bar | none (human bar on stderr)
    events_to_store: bool = True                    # mirror events.jsonl into the object store
    events_key: str = ""                            # default: runs/<run_name>/events.jsonl
    stop_after_epochs: int = 0                      # >0: exit after this many epochs (testing)

    # ---- data source ---------------------------------------------------------
    source: str = "auto"               # auto | flickr8k-dir | store
    flickr8k_dir: str = ""             # raw archive layout (zips or extracted folder)
    store: str = "auto"                # auto | fs | minio   (for source=store)
    store_dir: str = ""                # filesystem object store root (bucket = sub-folder)
    bucket: str = "glimpse"
    dataset: str = "flickr8k"
    dataset_version: str = "latest"
    train_split: str = "train"
    dev_split: str = "dev"
    max_train_images: int = 0          # 0 = all (debug / tests)

    # ---- tokenizer -------------------------------------------------------------
    vocab_min_count: int = 4
    max_len: int = 40                  # tokens per caption (WordPiece ids incl. [CLS]/[SEP], or words)

    # ---- image preprocessing / backbone --------------------------------------
    image_size: int = 224
    backbone: str = "efficientnet_lite0"  # mobilenet_v1_075 | efficientnet_lite0 | mobilenet_v3_small | tiny
    backbone_weights: str = "auto"       # auto | none | <path to .pt state dict>
    pretrained_dir: str = ""             # ../shared/pretrained (for converting v1 on the fly)
    feature_grid: bool = True            # cache the spatial grid (C×7×7) not only pooled
    cache_hflip: bool = True             # also cache features of the mirrored image (aug.)
    tta_hflip: bool = True               # image embedding = mean of the image's and its mirror's
    tta_zoom: float = 0.75               # >0: also average in the centre crop covering this share of each side, resized back
    qb_beta: float = 15.0                # >0: query-bank normalisation in evaluate/export/serving (querybank.py; training's dev selection ranks by cosine)
    qb_bank_size: int = 3000             # train images (and captions) in the query bank

    # ---- model ---------------------------------------------------------------
    embed_dim: int = 256
    image_head: str = "mean"          # mean | attn  (attention pooling over the grid)
    image_hidden: int = 0             # 0 = linear projection only (no residual MLP)
    attn_heads: int = 4               # attention-pooling heads over the grid (image_head=attn)
    attn_hidden: int = 256            # 0 = linear attention scores (cheapest)
    grid_dropout: float = 0.0         # training: drop this share of grid cells before pooling
    text_proj_hidden: int = 0         # 0 = linear projection only
    text_encoder: str = "minilm_l6"   # bilstm (word vocabulary built from train) | minilm_l6 (pretrained all-MiniLM-L6-v2, its WordPiece tokenizer)
    text_unfreeze: int = 2            # minilm_l6: top transformer layers trained (0 = frozen; the frozen bottom's output is cached)
    text_lr_mult: float = 0.2         # minilm_l6: learning rate of its trained layers, relative to lr
    word_dim: int = 128
    text_hidden: int = 128            # per direction
    bidirectional: bool = True
    text_layers: int = 1
    dropout: float = 0.1
    word_dropout: float = 0.0         # replace tokens by <unk> during training
    word_vectors: str = ""            # optional word vectors to init embeddings: GloVe-format text file or spaCy vectors/wheel (word_vectors.py)
    init_from: str = ""               # warm start: a run's best.pt (same vocabulary); head + text weights are copied

    # ---- loss ----------------------------------------------------------------
    loss: str = "infonce"             # infonce | vsepp | both
    init_temperature: float = 0.07
    learn_temperature: bool = True
    margin: float = 0.2               # VSE++ hinge margin
    vsepp_weight: float = 1.0         # weight of the hinge term when loss=both

    # ---- optimisation ---------------------------------------------------------
    epochs: int = 4
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 150
    min_lr_ratio: float = 0.02
    grad_clip: float = 2.0
    eval_every: int = 1               # epochs

    # ---- phase 2 (optional fine-tuning of the top of the backbone) ------------------
    phase2_epochs: int = 0
    phase2_mode: str = "images"       # images: end-to-end on augmented images (GPU) | cached: cache the frozen bottom, train the top (CPU)
    phase2_unfreeze: int = 2          # number of top backbone blocks to train
    phase2_lr: float = 2e-4
    phase2_warmup_steps: int = 50
    phase2_backbone_lr_mult: float = 0.1
    phase2_batch_size: int = 128

    # ---- filled in at run time (recorded in config.json) -----------------------
    weights_source: str = ""
    dataset_source: str = ""
    dataset_version_resolved: str = ""
    git_commit: str = ""
    loss_choice_note: str = ""
    soup_of: str = ""                  # soup.py: the runs whose weights this model averages

    # ---------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.run_name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        cfg = cls()
        cfg.update(d)
        return cfg

    def update(self, d: dict[str, Any]) -> None:
        hints = get_type_hints(Config)
        names = {f.name for f in fields(self)}
        for k, v in d.items():
            k2 = k.replace("-", "_")
            if k2 not in names:
                raise KeyError(f"unknown config key: {k}")
            setattr(self, k2, _coerce(v, hints[k2]))


def _coerce(v: Any, typ: Any) -> Any:
    if typ is bool or typ == "bool":
        if isinstance(v, bool):
            return v
        s = str(v).strip().lower()
        if s in ("1", "true", "yes", "on"):
            return True
        if s in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {v!r}")
    if typ is int or typ == "int":
        return int(v)
    if typ is float or typ == "float":
        return float(v)
    return str(v) if v is not None else ""


def _load_json_doc(spec: str) -> dict[str, Any]:
    spec = spec.strip()
    if spec.startswith("{"):
        return json.loads(spec)
    return json.loads(Path(spec).read_text())


def parse_config(argv: list[str] | None = None, description: str = "") -> tuple[Config, argparse.Namespace]:
    """Build a Config from defaults, a JSON document and CLI flags."""
    hints = get_type_hints(Config)
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default=None, help="JSON config file (or inline JSON object)")
    p.add_argument("--config-json", default=None, help="inline JSON config object")
    defaults = Config()
    for f in fields(Config):
        typ = hints[f.name]
        flag = "--" + f.name.replace("_", "-")
        if typ is bool:
            p.add_argument(flag, dest=f.name, default=None, nargs="?", const="true",
                           help=f"(bool) default {getattr(defaults, f.name)}")
        else:
            p.add_argument(flag, dest=f.name, default=None,
                           help=f"default {getattr(defaults, f.name)!r}")
    args = p.parse_args(argv)
    cfg = Config()
    env_doc = os.environ.get("GLIMPSE_TRAIN_CONFIG")
    for doc in (env_doc, args.config, args.config_json):
        if doc:
            cfg.update(_load_json_doc(doc))
    cli = {f.name: getattr(args, f.name) for f in fields(Config) if getattr(args, f.name) is not None}
    cfg.update(cli)
    return cfg, args


def pick_device(name: str = "auto"):
    import torch
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def git_commit() -> str:
    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=5)
        commit = out.stdout.strip() if out.returncode == 0 else "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "model"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=5)
        if commit != "unknown" and dirty.stdout.strip():
            commit += "-dirty"
        return commit
    except Exception:
        return "unknown"
