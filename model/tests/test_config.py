"""The trainer's defaults are the recipe of the model a fresh clone serves (the demo pack's
model, demo/model/config.json): a bare run and StartTraining {} train that recipe."""
from __future__ import annotations

import json
from dataclasses import fields

from glimpse_model.config import REPO_ROOT, Config

SHIPPED_CONFIG = REPO_ROOT / "demo" / "model" / "config.json"

# Not the recipe: where and how a run executes (paths, store, device, threads, progress), what it
# records about itself, and the seed (a draw, not a choice: the Training service's seed 0 means 42).
NOT_RECIPE = {
    "run_name", "out_dir", "cache_dir", "device", "amp", "num_threads", "num_workers", "resume", "progress",
    "events_to_store", "events_key", "stop_after_epochs", "source", "flickr8k_dir", "store", "store_dir",
    "bucket", "dataset", "dataset_version", "pretrained_dir", "weights_source", "dataset_source",
    "dataset_version_resolved", "git_commit", "loss_choice_note", "soup_of", "seed",
}


def test_defaults_are_the_shipped_recipe():
    shipped = json.loads(SHIPPED_CONFIG.read_text())
    assert not shipped.get("soup_of"), "the shipped model is a soup: name the recipe the defaults follow"
    defaults = Config()
    recipe = [f.name for f in fields(Config) if f.name not in NOT_RECIPE]
    # Keys newer than the shipped model are absent from its config.json (it was trained without them).
    compared = [k for k in recipe if k in shipped]
    assert len(compared) >= 40, compared
    drift = {k: {"default": getattr(defaults, k), "shipped": shipped[k]} for k in compared
             if getattr(defaults, k) != shipped[k]}
    assert drift == {}, f"config.py defaults differ from {SHIPPED_CONFIG.relative_to(REPO_ROOT)}: {drift}"
