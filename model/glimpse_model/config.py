"""Training configuration: one dataclass holding every hyper-parameter.

The names, types, defaults and meanings come from ``config.schema.json`` beside this file (a JSON
Schema), the one list the Training service reads too (its identical copy:
services/training/src/trainer-config.schema.json).

Precedence (lowest → highest): the schema's defaults < JSON document < CLI flags.

The JSON document can be given as ``--config path.json``, as ``--config-json '{...}'``
or through the environment (``GLIMPSE_TRAIN_CONFIG`` = a path or an inline JSON
object) — the Training service / Kubernetes Job passes it that way.  Every field is
also a CLI flag: ``--batch-size 256``, ``--image-head attn``, ``--amp false``.  A config
*file* must name its architecture (``backbone`` and ``text_encoder``) or is refused; an
inline document is a set of overrides on the defaults, and no document at all trains the
defaults (the shipped recipe, configs/flickr8k_pretrained_cpu.json).

    uv run python -m glimpse_model.train --help
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import subprocess
from dataclasses import field, fields
from pathlib import Path
from typing import Any, get_type_hints

MODEL_DIR = Path(__file__).resolve().parent.parent  # .../model
REPO_ROOT = MODEL_DIR.parent


#: The one list of the trainer's hyper-parameters (name, type, default, meaning), shared with the
#: Training service (services/training/src/trainer-config.schema.json is an identical copy).
SCHEMA_PATH = Path(__file__).with_name("config.schema.json")
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
_TYPES: dict[str, type] = {"integer": int, "number": float, "boolean": bool, "string": str}

#: Keys of options since removed, which configs recorded before their removal still hold (the
#: demo pack's config.json among them): ``Config.from_record`` drops them; a config document
#: naming one is refused like any unknown key. pretrained_dir: the MobileNetV1 TF.js weights
#: folder; word_vectors: pretrained word vectors for the biLSTM's embeddings (both #25).
RETIRED = frozenset({"pretrained_dir", "word_vectors"})


def _schema_default(name: str, spec: dict[str, Any]) -> Any:
    """A property's default, checked against its type ({model_dir} in a string = MODEL_DIR)."""
    typ = _TYPES[spec["type"]]
    value = spec["default"]
    if typ is bool:
        ok = isinstance(value, bool)
    elif typ is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, typ) and not isinstance(value, bool)
    if not ok:
        raise TypeError(f"{SCHEMA_PATH.name}: {name}'s default {value!r} is not of type {spec['type']}")
    if typ is str:
        return value.replace("{model_dir}", str(MODEL_DIR))
    return typ(value)


#: Each backbone's native input side in pixels (square): the resolution its ImageNet weights were
#: trained at (EfficientNet-Lite1/2: 240/260; the CI towers, which have no pretrained weights: 224).
#: ``image_size`` 0 — the default — means this size.
NATIVE_IMAGE_SIZE: dict[str, int] = {
    "efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260,
    "mobilenet_v3_small": 224, "tiny": 224,
}


def native_image_size(backbone: str) -> int:
    """The input side a backbone was trained at (NATIVE_IMAGE_SIZE)."""
    try:
        return NATIVE_IMAGE_SIZE[backbone]
    except KeyError:
        raise ValueError(f"unknown backbone {backbone!r} ({' | '.join(NATIVE_IMAGE_SIZE)})") from None


class _ConfigMethods:
    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.run_name  # type: ignore[attr-defined]

    @property
    def input_size(self) -> int:
        """The square input side the run trains and serves at: ``image_size``, or with 0 the
        backbone's native size. A run records it as its ``image_size`` (train.py resolves it first)."""
        return self.image_size or native_image_size(self.backbone)  # type: ignore[attr-defined]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        cfg = cls()
        cfg.update(d)
        return cfg  # type: ignore[return-value]

    @classmethod
    def from_record(cls, d: dict[str, Any]) -> "Config":
        """The config a run or an export recorded (best.pt, config.json): as ``from_dict``, less the
        keys of removed options that records made before their removal still hold (RETIRED)."""
        return cls.from_dict({k: v for k, v in d.items() if k not in RETIRED})

    def update(self, d: dict[str, Any]) -> None:
        hints = get_type_hints(Config)
        names = {f.name for f in fields(Config)}
        for k, v in d.items():
            k2 = k.replace("-", "_")
            if k2 not in names:
                raise KeyError(f"unknown config key: {k}")
            setattr(self, k2, _coerce(v, hints[k2]))


# One field per property of config.schema.json, in its order, with its type and default. The
# defaults are the recipe of the model a fresh clone serves (demo/model/config.json), so a bare run
# (`train` with no config, StartTraining {}) trains that; tests/test_config.py checks it.
Config = dataclasses.make_dataclass(
    "Config",
    [(name, _TYPES[spec["type"]], field(default=_schema_default(name, spec)))
     for name, spec in SCHEMA["properties"].items()],
    bases=(_ConfigMethods,),
)
Config.__module__ = __name__
Config.__doc__ = "Every hyper-parameter of a training run (config.schema.json: names, types, defaults, meanings)."


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


#: What a config file must name: its towers. A recipe that left them out would train whatever
#: the defaults are at the time (the files under configs/ once did, after the defaults changed).
ARCHITECTURE_KEYS = ("backbone", "text_encoder")


def _load_json_doc(spec: str) -> dict[str, Any]:
    """A config document: an inline JSON object (a set of overrides, as the Training service
    sends), or a file, which must name its architecture (ARCHITECTURE_KEYS)."""
    spec = spec.strip()
    if spec.startswith("{"):
        return json.loads(spec)
    doc = json.loads(Path(spec).read_text())
    missing = [k for k in ARCHITECTURE_KEYS if k not in doc]
    if missing:
        raise ValueError(f"{spec} names no {' and no '.join(missing)}: a config file must name its "
                         f"architecture ({', '.join(ARCHITECTURE_KEYS)}; see config.schema.json)")
    return doc


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
        about = SCHEMA["properties"][f.name].get("description", "").replace("%", "%%")
        about = f"{about}; " if about else ""
        if typ is bool:
            p.add_argument(flag, dest=f.name, default=None, nargs="?", const="true",
                           help=f"{about}(bool) default {getattr(defaults, f.name)}")
        else:
            p.add_argument(flag, dest=f.name, default=None,
                           help=f"{about}default {getattr(defaults, f.name)!r}")
    args = p.parse_args(argv)
    cfg = Config()
    env_doc = os.environ.get("GLIMPSE_TRAIN_CONFIG")
    for doc in (env_doc, args.config, args.config_json):
        if doc:
            try:
                cfg.update(_load_json_doc(doc))
            except ValueError as e:
                p.error(str(e))
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
