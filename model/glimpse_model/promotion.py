"""Quality-gated promotion: a new model version becomes production only when it ranks the dev
split at least as well as the current production model, by a margin, on the same dataset version.

Both sides are measured the same way, as served (``evaluate.served_metrics``: the exported ONNX
encoders, the version's tokenizer and preprocessing and its query bank when it ships one) on the
dev split of one dataset version; export.py stores the figures as ``dev_served`` in metrics.json.
Production's stored figures are used when they are for that split of that published dataset
version; otherwise (another version, a raw-folder dataset whose content has no id, an export from
before the gate) production is downloaded from the registry, checked against its checksums and
version id, and re-evaluated. When production cannot be evaluated the new version is not promoted:
the gate never replaces a model it could not compare.

    rule: promote  ⇔  no production yet, or candidate[metric] ≥ production[metric] + margin
"""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from .registry import fetch_version, read_alias, write_alias

# Higher is better for each; "rsum" = R@1 + R@5 + R@10 in both directions (0..600).
METRICS = ("rsum", "t2i_r1", "t2i_r5", "t2i_r10", "i2t_r1", "i2t_r5", "i2t_r10")
DEFAULT_METRIC = "rsum"
DEFAULT_MARGIN = 0.0
# Float noise in rounded recalls must not decide a tie.
EPS = 1e-6
PUBLISHED_VERSION = re.compile(r"^[0-9a-f]{16}$")
# What a re-evaluation needs besides the version's hashed files.
BANK_FILES = ("querybank.json", "querybank_images.f32", "querybank_captions.f32")


def margin_limit(metric: str) -> float:
    """A margin stays within ± the metric's range (the Training service checks the same)."""
    return 600.0 if metric == "rsum" else 100.0


def metric_value(m: dict, metric: str) -> float:
    if metric == "rsum":
        return float(m["rsum"])
    direction, k = metric.split("_")
    return float(m[direction][k])


def comparable(stored: dict | None, split: str, dataset_version: str) -> bool:
    """Stored figures count only for the same split of the same published (content-addressed) version."""
    return bool(stored) and stored.get("split") == split and stored.get("dataset_version") == dataset_version \
        and PUBLISHED_VERSION.match(dataset_version) is not None


def production_metrics(store, version: str, ds, split: str, threads: int = 2) -> tuple[dict, bool]:
    """(production's served metrics on this split, whether they were re-evaluated now)."""
    from .evaluate import served_metrics  # evaluate imports torch and the model: only when needed

    with tempfile.TemporaryDirectory(prefix="glimpse-production-") as tmp:
        sums = json.loads(store.get(f"models/{version}/checksums.json"))
        # metrics.json is checked like the encoders: stored figures count only if they are the version's own
        folder = fetch_version(store, version, Path(tmp), ["metrics.json", *(f for f in BANK_FILES if f in sums)])
        stored = json.loads((folder / "metrics.json").read_text()).get("dev_served")
        if comparable(stored, split, ds.version):
            return stored, False
        return served_metrics(folder, ds, split, threads), True


def decide(store, candidate: str, served: dict, ds, metric: str = DEFAULT_METRIC,
           margin: float = DEFAULT_MARGIN, threads: int = 2) -> dict:
    """The gate's decision for ``candidate`` (registered, with its ``served`` dev metrics)."""
    if metric not in METRICS:
        raise ValueError(f"unknown promotion metric {metric!r} (one of {', '.join(METRICS)})")
    value = metric_value(served, metric)
    d = {"promoted": False, "reason": "", "metric": metric, "margin": margin, "model_version": candidate,
         "candidate_value": value, "production_version": "", "production_value": None,
         "production_reevaluated": False, "dataset_version": ds.version, "split": served["split"]}
    production = read_alias(store)
    if production is None:
        return {**d, "promoted": True, "reason": "no production model yet (first model)"}
    d["production_version"] = production
    if production == candidate:
        return {**d, "promoted": True, "production_value": value, "reason": f"{candidate} is already production"}
    try:
        prod, reevaluated = production_metrics(store, production, ds, served["split"], threads)
    except Exception as e:  # anything that stops the comparison keeps production (conservative)
        return {**d, "reason": f"production {production} could not be evaluated on dataset version "
                               f"{ds.version}, so it is kept: {e}"}
    pv = metric_value(prod, metric)
    ok = value + EPS >= pv + margin
    where = f" (production re-evaluated on dataset version {ds.version})" if reevaluated else ""
    return {**d, "promoted": ok, "production_value": pv, "production_reevaluated": reevaluated,
            "reason": f"dev {metric} {value:g} {'>=' if ok else '<'} production {production} {pv:g} "
                      f"+ margin {margin:g}{where}"}


def apply(store, decision: dict) -> dict:
    """Moves the alias when the decision says so, unless production changed meanwhile."""
    if not decision["promoted"]:
        return decision
    now = read_alias(store)
    if (now or "") != decision["production_version"]:
        return {**decision, "promoted": False,
                "reason": f"production changed to {now} while the candidate was compared with "
                          f"{decision['production_version'] or 'no model'}; not promoted"}
    write_alias(store, decision["model_version"])
    return decision
