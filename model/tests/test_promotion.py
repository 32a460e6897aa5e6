"""Quality-gated promotion (promotion.py through export --promote): a worse model is registered but
not promoted, a better one is promoted, the first is promoted; production is re-evaluated on the
candidate's dataset version when its stored figures are for another, and a production the gate
cannot verify is kept. Real runs, real exports, a real folder store."""
from __future__ import annotations

import json
import shutil

import pytest

from conftest import TINY
from glimpse_model import evaluate, export
from glimpse_model.registry import ALIAS_KEY, read_alias, write_alias
from glimpse_model.store import FSStore
from helpers import make_tiny_dataset, write_published_version


@pytest.fixture(scope="module")
def runs(trained_run, tiny_store, tmp_path_factory):
    """(good, bad) run folders: the shared trained run (copied: export appends to its events) and
    a run whose single epoch at lr 1e-6 leaves it at its random initialisation."""
    from glimpse_model.config import Config
    from glimpse_model.train import train

    cfg, _ = trained_run
    root, _ = tiny_store
    out = tmp_path_factory.mktemp("gate-runs")
    good = shutil.copytree(cfg.run_dir, out / "good")
    bad = Config.from_dict(dict(TINY, run_name="bad", out_dir=str(out), cache_dir=str(out / "cache"),
                                store_dir=str(root), epochs=1, lr=1e-6))
    train(bad)
    return good, bad.run_dir


@pytest.fixture()
def store(tmp_path, tiny_data):
    """A fresh registry with the tiny dataset published (the same version id as tiny_store)."""
    root = tmp_path / "store"
    version = write_published_version(root, *tiny_data)
    return root, version


def run_export(run_dir, root, version, out, *flags) -> dict:
    """export --upload --promote; returns the decision it printed last."""
    assert export.main(["--run-dir", str(run_dir), "--out", str(out), "--store-dir", str(root),
                        "--dataset-version", version, "--upload", "--promote", *flags]) == 0
    return _decision(run_dir)


def _decision(run_dir) -> dict:
    """The last promotion event of the run's event log (what the Training service reads)."""
    evs = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    return [e for e in evs if e["event"] == "promotion"][-1]


def registered(root, version) -> bool:
    return (root / "glimpse" / "models" / version / "checksums.json").is_file()


def test_first_worse_and_better(runs, store, tmp_path):
    good, bad = runs
    root, dv = store
    fs = FSStore(root)

    first = run_export(bad, root, dv, tmp_path / "bad1")
    assert first["promoted"] is True and "first model" in first["reason"]
    assert read_alias(fs) == first["model_version"]
    bad_version = first["model_version"]

    better = run_export(good, root, dv, tmp_path / "good1")
    assert better["promoted"] is True, better
    assert better["production_version"] == bad_version and better["production_reevaluated"] is False
    assert better["candidate_value"] >= better["production_value"]
    assert better["reason"] == (f"dev rsum {better['candidate_value']:g} >= production {bad_version} "
                                f"{better['production_value']:g} + margin 0")
    assert read_alias(fs) == better["model_version"]
    good_version = better["model_version"]

    # A worse model trained later: registered, not promoted, the alias untouched, the reason given.
    worse = run_export(bad, root, dv, tmp_path / "bad2")
    assert worse["model_version"] == bad_version
    assert worse["promoted"] is False, worse
    assert worse["reason"] == (f"dev rsum {worse['candidate_value']:g} < production {good_version} "
                               f"{worse['production_value']:g} + margin 0")
    assert worse["candidate_value"] < worse["production_value"]
    assert read_alias(fs) == good_version
    assert registered(root, bad_version) and registered(root, good_version)
    # the decision also reaches the store copy of the run's events (how a Kubernetes Job reports it)
    mirrored = (root / "glimpse" / "runs" / "bad" / "events.jsonl").read_text().splitlines()
    assert json.loads(mirrored[-1]) == worse
    # the candidate's figures are the served ones stored with the version (what later gates read)
    served = json.loads((root / "glimpse" / "models" / bad_version / "metrics.json").read_text())["dev_served"]
    assert served["dataset_version"] == dv and served["split"] == "dev" and served["rsum"] == worse["candidate_value"]


def test_margin_and_metric(runs, store, tmp_path):
    good, bad = runs
    root, dv = store
    fs = FSStore(root)
    run_export(bad, root, dv, tmp_path / "bad")
    bad_version = read_alias(fs)
    # better, but not by the margin asked for
    d = run_export(good, root, dv, tmp_path / "good", "--promotion-metric", "t2i_r10", "--promotion-margin", "100")
    assert d["promoted"] is False and d["metric"] == "t2i_r10" and d["margin"] == 100
    assert d["candidate_value"] > d["production_value"]
    assert d["reason"].startswith(f"dev t2i_r10 {d['candidate_value']:g} < production {bad_version} ")
    assert d["reason"].endswith(" + margin 100")
    assert read_alias(fs) == bad_version
    # a negative margin tolerates that much of a loss: the worse model passes against the better
    write_alias(fs, d["model_version"])
    again = run_export(bad, root, dv, tmp_path / "bad", "--promotion-margin=-600")
    assert again["promoted"] is True and read_alias(fs) == bad_version
    # a margin beyond the metric's range is refused before any work
    with pytest.raises(SystemExit):
        export.main(["--run-dir", str(bad), "--promote", "--promotion-metric", "i2t_r1", "--promotion-margin", "101"])


def test_production_reevaluated_on_another_dataset_version(runs, store, tmp_path):
    good, bad = runs
    root, dv = store
    fs = FSStore(root)
    first = run_export(bad, root, dv, tmp_path / "bad")
    assert first["promoted"]
    # a new dataset version (other images): production's stored dev figures are for dv, not for it
    dv2 = write_published_version(root, *make_tiny_dataset(seed=5))
    assert dv2 != dv
    d = run_export(good, root, dv2, tmp_path / "good")
    assert d["dataset_version"] == dv2 and d["production_reevaluated"] is True
    assert d["reason"].endswith(f"(production re-evaluated on dataset version {dv2})")
    # the same figure the evaluation CLI gives for production's ONNX models on dv2's dev split
    ref = tmp_path / "ref.json"
    evaluate.main(["--run-dir", str(bad), "--split", "dev", "--store-dir", str(root), "--dataset-version", dv2,
                   "--onnx", str(tmp_path / "bad"), "--out", str(ref)])
    assert d["production_value"] == json.loads(ref.read_text())["rsum"]
    stored = json.loads((root / "glimpse" / "models" / first["model_version"] / "metrics.json").read_text())
    assert stored["dev_served"]["dataset_version"] == dv


def test_unverifiable_production_is_kept(runs, store, tmp_path):
    good, bad = runs
    root, dv = store
    fs = FSStore(root)
    bad_version = run_export(bad, root, dv, tmp_path / "bad")["model_version"]
    onnx = root / "glimpse" / "models" / bad_version / "image_encoder.onnx"
    data = bytearray(onnx.read_bytes())
    data[300] ^= 0xFF
    onnx.write_bytes(bytes(data))
    d = run_export(good, root, dv, tmp_path / "good")
    assert d["promoted"] is False
    assert "could not be evaluated" in d["reason"] and "checksum mismatch for image_encoder.onnx" in d["reason"]
    assert read_alias(fs) == bad_version and registered(root, d["model_version"])
    assert (root / "glimpse" / ALIAS_KEY).is_file()


def test_promote_needs_the_dataset(runs, tmp_path):
    good, _ = runs
    with pytest.raises(SystemExit, match="needs the dataset"):
        export.main(["--run-dir", str(good), "--out", str(tmp_path / "x"), "--promote"])
