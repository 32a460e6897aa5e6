"""Training on a tiny generated dataset: it learns, events are emitted, resume after a
SIGKILL continues bit-for-bit (also in a new pod, from the checkpoint mirrored to the object
store), evaluation writes metrics.json."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY

MODEL_DIR = Path(__file__).resolve().parents[1]


def test_training_learns(trained_run):
    cfg, final = trained_run
    n_dev = final["n_images"]
    chance = 100.0 / n_dev                                    # R@1 of a random ranking, in %
    # demonstrably learns: dev R@1 far above chance in both directions
    assert final["t2i"]["r1"] >= 10 * chance, final
    assert final["i2t"]["r1"] >= 10 * chance, final
    assert final["t2i"]["r10"] >= 60 and final["i2t"]["r10"] >= 60, final
    run = cfg.run_dir
    for f in ("checkpoint.pt", "best.pt", "vocab.json", "preprocess.json", "config.json",
              "dev_metrics.json", "events.jsonl", "report.png"):
        assert (run / f).is_file(), f
    conf = json.loads((run / "config.json").read_text())
    assert conf["dataset_version_resolved"] and conf["dataset_source"].startswith("store:")
    assert conf["git_commit"]


def test_events_are_machine_readable(trained_run, tiny_store):
    cfg, _ = trained_run
    evs = [json.loads(l) for l in (cfg.run_dir / "events.jsonl").read_text().splitlines()]
    kinds = {e["event"] for e in evs}
    assert {"start", "features_ready", "step", "epoch", "done"} <= kinds
    step = next(e for e in evs if e["event"] == "step")
    assert {"phase", "epoch", "step", "loss", "lr", "throughput", "eta_s"} <= set(step)
    ep = next(e for e in evs if e["event"] == "epoch")
    assert {"r1", "r5", "r10", "medr"} <= set(ep["dev"]["t2i"])
    # mirrored to the object store for the Training service
    root, _ = tiny_store
    mirrored = root / "glimpse" / "runs" / cfg.run_name / "events.jsonl"
    assert mirrored.is_file() and '"done"' in mirrored.read_text()


def _train_cmd(cfg, run_name, extra=()):
    doc = dict(TINY, run_name=run_name, out_dir=cfg.out_dir, cache_dir=cfg.cache_dir,
               store_dir=cfg.store_dir, bucket="glimpse", dataset_version="latest")
    return [sys.executable, "-m", "glimpse_model.train", "--config-json", json.dumps(doc), *extra]


def test_resume_after_kill_is_bit_for_bit(trained_run):
    cfg, _ = trained_run
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.Popen(_train_cmd(cfg, "killed"), cwd=MODEL_DIR, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, env=env)
    killed_after = None
    for line in p.stdout:
        ev = json.loads(line)
        if ev["event"] == "epoch" and ev["epoch"] == 2:
            p.send_signal(signal.SIGKILL)        # like a pod eviction: no clean shutdown
            killed_after = ev["epoch"]
            break
    p.wait(timeout=60)
    assert killed_after == 2 and p.returncode == -signal.SIGKILL
    run = Path(cfg.out_dir) / "killed"
    ck = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert ck["epoch"] >= 2
    r = subprocess.run(_train_cmd(cfg, "killed", ["--resume"]), cwd=MODEL_DIR, capture_output=True,
                       text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    evs = [json.loads(l) for l in r.stdout.splitlines()]
    assert evs[0]["event"] == "start" and evs[0]["resumed"] is True
    assert min(e["epoch"] for e in evs if e["event"] == "epoch") == ck["epoch"] + 1
    a = torch.load(cfg.run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
    b = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["history"]["steps"] == b["history"]["steps"]
    ba = torch.load(cfg.run_dir / "best.pt", map_location="cpu", weights_only=False)
    bb = torch.load(run / "best.pt", map_location="cpu", weights_only=False)
    assert ba["epoch"] == bb["epoch"] and ba["dev"] == bb["dev"]


def test_resume_in_a_new_pod_from_the_store(trained_run, tmp_path):
    """A Kubernetes Job retry: the pod dies, a new pod starts with an empty /runs (emptyDir: no
    run folder, no feature cache) and `--resume`; the run continues from the checkpoint the
    first pod mirrored to the object store and ends bit-for-bit where an uninterrupted run does."""
    from glimpse_model.config import Config
    from glimpse_model.train import train

    ref, _ = trained_run

    def pod(emptydir: str, **kw) -> Config:
        out = tmp_path / emptydir
        return Config.from_dict(dict(TINY, run_name="pod", out_dir=str(out), cache_dir=str(out / ".cache"),
                                     store_dir=ref.store_dir, bucket="glimpse", dataset_version="latest", **kw))

    first = pod("pod1", resume=True, stop_after_epochs=3)   # the Job always passes --resume
    with pytest.raises(SystemExit):
        train(first)
    stored = Path(ref.store_dir) / "glimpse" / "runs" / "pod"
    assert {"checkpoint.pt", "best.pt", "events.jsonl"} <= {p.name for p in stored.iterdir()}
    shutil.rmtree(tmp_path / "pod1")                          # the pod and its emptyDir are gone

    second = pod("pod2", resume=True)
    train(second)
    evs = [json.loads(l) for l in (second.run_dir / "events.jsonl").read_text().splitlines()]
    starts = [i for i, e in enumerate(evs) if e["event"] == "start"]
    assert [evs[i]["resumed"] for i in starts] == [False, True]  # one event log across both pods
    epochs = [e["epoch"] for e in evs[starts[1]:] if e["event"] == "epoch"]
    assert epochs == list(range(4, TINY["epochs"] + 1))       # epoch numbering continues
    a = torch.load(ref.run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
    b = torch.load(second.run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["history"]["steps"] == b["history"]["steps"]
    ba = torch.load(ref.run_dir / "best.pt", map_location="cpu", weights_only=False)
    bb = torch.load(second.run_dir / "best.pt", map_location="cpu", weights_only=False)
    assert ba["epoch"] == bb["epoch"] and ba["dev"] == bb["dev"]


def test_evaluate_writes_metrics(trained_run, tiny_store):
    from glimpse_model import evaluate

    cfg, _ = trained_run
    root, version = tiny_store
    assert evaluate.main(["--run-dir", str(cfg.run_dir), "--split", "test", "--store-dir", str(root),
                          "--dataset-version", version]) == 0
    m = json.loads((cfg.run_dir / "metrics.json").read_text())
    assert m["split"] == "test" and m["dataset_version"] == version
    for d in ("t2i", "i2t"):
        assert {"r1", "r5", "r10", "medr"} <= set(m[d])
    assert m["n_images"] == 30 and m["n_captions"] == 150


@pytest.mark.parametrize("mode", ["images", "cached"])
def test_phase2_finetune_smoke(tiny_store, tmp_path, mode):
    """Phase 2 (backbone top block unfrozen; end-to-end on augmented images, or on cached
    activations of the frozen bottom) runs, updates only the top of the backbone, and the
    exported-path embedding (pixels → backbone → head) equals the cached-path one."""
    from glimpse_model.config import Config
    from glimpse_model.train import train

    root, _ = tiny_store
    cfg = Config.from_dict(dict(TINY, run_name="p2", out_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"),
                                store_dir=str(root), epochs=1, phase2_epochs=1, phase2_unfreeze=1,
                                phase2_mode=mode, phase2_batch_size=32, max_train_images=96))
    final = train(cfg)
    assert final["selected"]["phase"] in (1, 2)
    ck = torch.load(cfg.run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert ck["phase"] == 2 and ck["epoch"] == 1
    from glimpse_model.model import build_backbone
    ref, _ = build_backbone("tiny", "none")
    last = [k for k in ck["model"] if k.startswith("backbone.blocks.2.")]
    first = [k for k in ck["model"] if k.startswith("backbone.blocks.0.")]
    assert any(not torch.equal(ck["model"][k], ref.state_dict()[k[len("backbone."):]]) for k in last)
    assert all(torch.equal(ck["model"][k], ref.state_dict()[k[len("backbone."):]]) for k in first)
    if mode == "cached":
        # the cached path (bottom activations → top block → head) and the serving path (pixels →
        # whole backbone → head, mirror-averaged) give the same embeddings
        from glimpse_model.data import load_dataset, preprocess_spec
        from glimpse_model.evaluate import load_run
        from glimpse_model.features import compute_grids, load_pixels
        model, rcfg, _, _ = load_run(cfg.run_dir)
        ds = load_dataset(rcfg)
        ids = ds.splits["dev"][:4]
        spec = preprocess_spec(rcfg.backbone, rcfg.image_size)
        split_at = len(model.backbone.blocks) - 1
        with torch.no_grad():
            full = model.encode_image(load_pixels(ds, ids, spec))
            model.grid_start = split_at
            bottom = [compute_grids(model.backbone, ds, ids, spec, "cpu", flip, stop=split_at) for flip in (False, True)]
            cached = model.encode_grid(*bottom)
        assert (full - cached).abs().max() < 1e-2
