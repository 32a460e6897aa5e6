"""report.png: the figure a run leaves beside its weights (export copies it into the model) — a
training run's loss and dev recall per epoch (``write_report``, train.py's ``finish_run``) or a
soup's ingredients against the average (``write_soup_report``, soup.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .config import Config


def _pyplot():
    """matplotlib's pyplot on the Agg backend (files only: no display on a trainer's machine)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _pyplot().close(fig)


def write_report(history: dict, path: Path, cfg: Config) -> None:
    """A training run's report.png: the loss at every step and the dev recall after each epoch."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if history["steps"]:
        st = np.array(history["steps"], dtype=float)
        k = max(1, len(st) // 100)
        sm = np.convolve(st[:, 1], np.ones(k) / k, mode="valid")
        axes[0].plot(st[:, 0], st[:, 1], alpha=0.25, lw=0.7, label="loss (step)")
        axes[0].plot(st[k - 1:, 0], sm, lw=1.5, label=f"loss (mean of {k})")
        axes[0].set_xlabel("step")
        axes[0].set_title(f"training loss ({cfg.loss})")
        axes[0].legend()
    ev = [e for e in history["evals"] if e.get("dev")]
    if ev:
        x = np.arange(1, len(ev) + 1)
        for d, ls in (("t2i", "-"), ("i2t", "--")):
            for kk in ("r1", "r5", "r10"):
                axes[1].plot(x, [e["dev"][d][kk] for e in ev], ls, label=f"{d} {kk.upper()}")
        axes[1].set_xlabel("epoch (phase 1, then phase 2)")
        axes[1].set_ylabel("dev recall %")
        axes[1].set_title("dev recall")
        axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle(f"Glimpse {cfg.run_name}: {cfg.backbone} ({cfg.weights_source}), {cfg.image_head} head")
    _save(fig, path)


def write_soup_report(out: Path, dev: dict) -> None:
    """A soup's report.png: dev R@10 of each ingredient (as trained; its own test-time views) and of
    the soup (``dev``), from the soup.json in its run folder ``out``."""
    plt = _pyplot()
    rows = [(i["run"], i["dev"]) for i in json.loads((out / "soup.json").read_text())["ingredients"] if i["dev"]]
    rows.append((f"soup ({out.name})", dev))
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(rows)), 4))
    for k, (d, off) in enumerate((("t2i", -0.2), ("i2t", 0.2))):
        ax.bar(x + off, [r[1][d]["r10"] for r in rows], 0.4, label=f"{d} R@10")
    ax.set_xticks(x, [r[0] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(min(r[1][d]["r10"] for r in rows for d in ("t2i", "i2t")) - 5, None)
    ax.set_ylabel("dev recall %")
    ax.set_title("model soup: ingredients (dev, as selected in training) and the average")
    ax.legend()
    _save(fig, out / "report.png")
