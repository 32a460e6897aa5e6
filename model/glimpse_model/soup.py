"""Average the weights of several trained runs into one model (a uniform "model soup").

Runs fine-tuned from the same initialisation (here: the same seed, the same frozen ImageNet
backbone and phase-1 recipe) stay in one basin of the loss, so the mean of their weights is a
model of the same size and speed that can rank better than each of them (Wortsman et al. 2022).

    cd model
    uv run python -m glimpse_model.soup --out runs/soup runs/f8k-pre runs/s-tm2 \
        --tta-zoom 0.75 --flickr8k-dir ../../shared/datasets/flickr8k

The runs must share the vocabulary and the architecture (checked).  The new run folder holds
best.pt, vocab.json, preprocess.json, config.json, soup.json (the ingredients with their dev
metrics) and dev_metrics.json (the soup on the dev split); evaluate.py and export.py take it
like any trained run.  ``--tta-zoom`` / ``--tta-hflip`` set the test-time views of the soup,
``--qb-beta`` its query-bank normalisation (querybank.py).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from .config import Config, git_commit
from .evaluate import add_data_args
from .report import write_soup_report

# config keys that decide the shapes and the computation of the network
ARCH_KEYS = ("backbone", "image_size", "embed_dim", "image_head", "image_hidden", "attn_heads", "attn_hidden",
             "text_proj_hidden", "word_dim", "text_hidden", "bidirectional", "text_layers", "max_len",
             "vocab_min_count", "feature_grid")


def average(states: list[dict]) -> dict:
    """Element-wise mean of floating-point tensors; other tensors (BatchNorm counters) must agree."""
    out = {}
    for k, v in states[0].items():
        if v.is_floating_point():
            out[k] = (sum(s[k].double() for s in states) / len(states)).to(v.dtype)
        else:
            if any(not torch.equal(s[k], v) for s in states[1:]):
                raise SystemExit(f"soup: integer tensor {k} differs between runs")
            out[k] = v.clone()
    return out


def make_soup(run_dirs: list[Path], out: Path, tta_hflip: bool | None = None, tta_zoom: float | None = None,
              qb_beta: float | None = None, qb_bank_size: int | None = None, note: str = "") -> dict:
    bests = [torch.load(d / "best.pt", map_location="cpu", weights_only=False) for d in run_dirs]
    vocabs = [(d / "vocab.json").read_text() for d in run_dirs]
    first = Config.from_record(bests[0]["config"])
    for d, b, v in zip(run_dirs[1:], bests[1:], vocabs[1:]):
        if v != vocabs[0]:
            raise SystemExit(f"soup: {d} has another vocabulary than {run_dirs[0]}")
        c = Config.from_record(b["config"])
        diff = [k for k in ARCH_KEYS if getattr(c, k) != getattr(first, k)]
        if diff or b["model"].keys() != bests[0]["model"].keys() or \
                any(b["model"][k].shape != bests[0]["model"][k].shape for k in b["model"]):
            raise SystemExit(f"soup: {d} has another architecture than {run_dirs[0]} ({diff or 'weights'})")
    cfg = first
    cfg.run_name = out.name
    cfg.soup_of = ",".join(d.name for d in run_dirs)
    cfg.init_from = ""
    cfg.git_commit = git_commit()
    # the ingredients' data, each named once (the soup was trained on all of them)
    cfg.dataset_source = "; ".join(dict.fromkeys(b["config"].get("dataset_source", "") for b in bests))
    cfg.dataset_version_resolved = "; ".join(dict.fromkeys(b["config"].get("dataset_version_resolved", "") for b in bests))
    if tta_hflip is not None:
        cfg.tta_hflip = tta_hflip
    if tta_zoom is not None:
        cfg.tta_zoom = tta_zoom
    if qb_beta is not None:
        cfg.qb_beta = qb_beta
    if qb_bank_size is not None:
        cfg.qb_bank_size = qb_bank_size
    out.mkdir(parents=True, exist_ok=True)
    for f in ("vocab.json", "preprocess.json"):
        shutil.copy(run_dirs[0] / f, out / f)
    ingredients = [{"run": d.name, "phase": b["phase"], "epoch": b["epoch"], "dev": b.get("dev"),
                    "dataset_source": b["config"].get("dataset_source"),
                    "phase2": {k: b["config"].get(k) for k in ("phase2_mode", "phase2_unfreeze", "phase2_epochs",
                                                               "phase2_lr", "phase2_backbone_lr_mult",
                                                               "phase2_batch_size")},
                    "git_commit": b["config"].get("git_commit")} for d, b in zip(run_dirs, bests)]
    (out / "soup.json").write_text(json.dumps({"method": "uniform weight average", "note": note,
                                               "ingredients": ingredients}, indent=1) + "\n")
    best = {"model": average([b["model"] for b in bests]), "dev": None, "phase": max(b["phase"] for b in bests),
            "epoch": 0, "config": cfg.to_dict(), "vocab": bests[0].get("vocab")}
    torch.save(best, out / "best.pt")
    cfg.save(out / "config.json")
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run folders (each with best.pt, vocab.json, preprocess.json)")
    ap.add_argument("--out", required=True, help="the soup's run folder")
    ap.add_argument("--tta-hflip", choices=("true", "false"), default=None)
    ap.add_argument("--tta-zoom", type=float, default=None)
    ap.add_argument("--qb-beta", type=float, default=None, help="query-bank normalisation (querybank.py); 0 = off")
    ap.add_argument("--qb-bank-size", type=int, default=None)
    ap.add_argument("--note", default="", help="free text for soup.json and the model card (e.g. how ingredients differ)")
    ap.add_argument("--no-dev-eval", action="store_true", help="skip the dev-split evaluation")
    add_data_args(ap)
    args = ap.parse_args(argv)
    if len(args.runs) < 2:
        raise SystemExit("soup: name at least two runs")
    out = Path(args.out)
    best = make_soup([Path(r) for r in args.runs], out,
                     None if args.tta_hflip is None else args.tta_hflip == "true", args.tta_zoom,
                     args.qb_beta, args.qb_bank_size, args.note)
    if not args.no_dev_eval:
        from .evaluate import main as evaluate
        flags = [f"--{k.replace('_', '-')}={getattr(args, k)}" for k in vars(args)
                 if k not in ("runs", "out", "tta_hflip", "tta_zoom", "qb_beta", "qb_bank_size", "note", "no_dev_eval") and getattr(args, k) is not None]
        evaluate(["--run-dir", str(out), "--split", "dev", "--out", str(out / "dev_metrics.json")] + flags)
        best["dev"] = {k: v for k, v in json.loads((out / "dev_metrics.json").read_text()).items()
                       if k in ("t2i", "i2t", "rsum", "n_images", "n_captions", "qbnorm")}
        torch.save(best, out / "best.pt")
        write_soup_report(out, best["dev"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
