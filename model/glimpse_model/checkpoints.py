"""A run's files and their mirror: the run folder's resumable state (checkpoint.pt, best.pt) saved
atomically, mirrored to ``runs/<run>/`` in the object store after each epoch and fetched back by
``--resume`` in an empty folder (a new pod); the RNG state a checkpoint carries; where a run
resumes (``resume_point``) and what it restores (``restore``).
"""
from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .config import RETIRED, Config
from .schedule import Optim
from .store import open_store

# fields that may differ between a killed run and its resumption
_RUNTIME_FIELDS = {"resume", "progress", "stop_after_epochs", "num_workers", "events_to_store",
                   "weights_source", "dataset_source", "dataset_version_resolved", "git_commit",
                   "loss_choice_note", "device", "out_dir", "cache_dir"}


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file, then renamed over ``path``: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# What --resume needs besides the dataset, mirrored to the object store (``runs/<run>/``) after
# each epoch so that a new pod, with an empty run folder, continues where the last one stopped.
RUN_STATE = ("best.pt", "checkpoint.pt")


def push_run_state(store, prefix: str, run_dir: Path, names) -> bool:
    """Upload ``names`` (in RUN_STATE order: best.pt before the checkpoint that refers to it)
    from the run folder to ``<prefix><name>``; False (and a note on stderr) when the store fails."""
    try:
        for name in RUN_STATE:
            if name in names:
                store.put(prefix + name, (run_dir / name).read_bytes())
        return True
    except Exception as e:  # like the events: a store hiccup never kills training
        sys.stderr.write(f"[train] mirroring the checkpoint to the object store failed: {e}\n")
        return False


def pull_run_state(store, prefix: str, run_dir: Path) -> bool:
    """--resume in an empty run folder (a new pod): fetch the mirrored RUN_STATE, and the event
    log so it continues, from ``<prefix>``; True when the store had a checkpoint."""
    if not store.exists(prefix + "checkpoint.pt"):
        return False
    for name in ("events.jsonl", *RUN_STATE):  # the checkpoint last: once here, all is here
        path = run_dir / name
        if not path.exists() and store.exists(prefix + name):
            tmp = path.with_name(name + ".tmp")
            tmp.write_bytes(store.get(prefix + name))
            os.replace(tmp, path)
    return True


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])
    if s.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


@dataclass
class RunFiles:
    """The run folder's resumable state (RUN_STATE) and its mirror in the object store; what was
    saved since the last successful push goes up after each epoch."""
    dir: Path
    store: object = None
    prefix: str = ""
    unpushed: set = field(default_factory=set)

    @property
    def checkpoint(self) -> Path:
        return self.dir / "checkpoint.pt"

    @property
    def best(self) -> Path:
        return self.dir / "best.pt"

    def save(self, name: str, obj) -> None:
        atomic_save(obj, self.dir / name)
        self.unpushed.add(name)

    def mirror(self) -> None:
        if self.store is not None and push_run_state(self.store, self.prefix, self.dir, self.unpushed):
            self.unpushed.clear()


def restore(saved: dict, optim: Optim, phase: int, n_epochs: int) -> None:
    """Continue from a checkpoint: its optimizer, schedule and loss scaler when it stopped inside
    this phase (n_epochs long), and always its RNG state, so the next epoch draws what it would have."""
    if saved["phase"] == phase and saved["epoch"] < n_epochs:
        optim.opt.load_state_dict(saved["optimizer"])
        optim.sched.load_state_dict(saved["scheduler"])
        if optim.scaler is not None and saved.get("scaler"):
            optim.scaler.load_state_dict(saved["scaler"])
    set_rng_state(saved["rng"])


def open_run(cfg: Config) -> RunFiles:
    """The run folder, with the object store the events (and run state) are mirrored to; a store
    that cannot be opened only costs the mirror."""
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    store = None
    try:
        store = open_store(cfg.store, cfg.store_dir, cfg.bucket) if cfg.events_to_store else None
    except Exception as e:
        print(f"[train] no object store for events: {e}", file=sys.stderr)
    return RunFiles(cfg.run_dir, store, f"runs/{cfg.run_name}/")


def resume_point(cfg: Config, files: RunFiles) -> dict | None:
    """With --resume, the checkpoint to continue from (fetched from the store first when the run
    folder has none: a new pod), once its config is known to be this run's; None for a new run,
    whose folder loses the events and state of an earlier one."""
    if cfg.resume and not files.checkpoint.is_file() and files.store is not None \
            and pull_run_state(files.store, files.prefix, files.dir):
        print(f"[train] resuming from the checkpoint in {files.store.describe()}/{files.prefix}", file=sys.stderr)
    saved = None
    if cfg.resume and files.checkpoint.is_file():
        saved = torch.load(files.checkpoint, map_location="cpu", weights_only=False)
        old = {k: v for k, v in saved["config"].items() if k not in _RUNTIME_FIELDS and k not in RETIRED}
        new = {k: v for k, v in cfg.to_dict().items() if k not in _RUNTIME_FIELDS}
        diff = {k: (old.get(k), new.get(k)) for k in set(old) | set(new) if old.get(k) != new.get(k)}
        if diff:
            raise SystemExit(f"--resume with a different config: {diff}")
    elif not cfg.resume:
        for p in (files.dir / "events.jsonl", files.checkpoint, files.best):
            if p.exists():
                p.unlink()
    return saved
