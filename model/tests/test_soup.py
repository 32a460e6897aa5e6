"""Model soup (weight averaging of runs), test-time zoom and query-bank normalisation: the soup
is the mean of its ingredients, refuses runs that do not fit together, evaluates and exports
like a trained run (the query bank shipped beside the ONNX models), and the cached evaluation
path with a zoom view equals the serving path."""
from __future__ import annotations

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest
import torch

from conftest import TINY


@pytest.fixture(scope="module")
def second_run(trained_run, tiny_store, tmp_path_factory):
    """A second run fine-tuned from the first run's weights with another seed (a soup ingredient)."""
    from glimpse_model.config import Config
    from glimpse_model.train import train

    cfg0, _ = trained_run
    root, _ = tiny_store
    out = tmp_path_factory.mktemp("runs2")
    cfg = Config.from_dict(dict(TINY, run_name="ft", out_dir=str(out), cache_dir=str(out / "cache"),
                                store_dir=str(root), epochs=2, seed=11, lr=1e-3,
                                init_from=str(cfg0.run_dir / "best.pt")))
    train(cfg)
    return cfg


@pytest.fixture(scope="module")
def soup_run(trained_run, second_run, tiny_store, tmp_path_factory):
    from glimpse_model import soup

    cfg0, _ = trained_run
    root, version = tiny_store
    out = tmp_path_factory.mktemp("soup") / "s"
    assert soup.main([str(cfg0.run_dir), str(second_run.run_dir), "--out", str(out), "--tta-zoom", "0.75",
                      "--qb-beta", "10", "--qb-bank-size", "40", "--note", "two seeds of one recipe",
                      "--store-dir", str(root), "--dataset-version", version]) == 0
    return out


def test_soup_is_the_mean_of_its_runs(trained_run, second_run, soup_run):
    cfg0, _ = trained_run
    a, b, s = (torch.load(d / "best.pt", map_location="cpu", weights_only=False)
               for d in (cfg0.run_dir, second_run.run_dir, soup_run))
    changed = 0
    for k, v in s["model"].items():
        if v.is_floating_point():
            torch.testing.assert_close(v, (a["model"][k] + b["model"][k]) / 2, rtol=0, atol=1e-6)
            changed += not torch.equal(a["model"][k], b["model"][k])
    assert changed > 0  # the ingredients really differ
    assert s["config"]["soup_of"] == f"{cfg0.run_dir.name},{second_run.run_dir.name}"
    assert s["config"]["tta_zoom"] == 0.75
    ing = json.loads((soup_run / "soup.json").read_text())["ingredients"]
    assert [i["run"] for i in ing] == [cfg0.run_dir.name, second_run.run_dir.name]
    dev = json.loads((soup_run / "dev_metrics.json").read_text())
    assert dev["split"] == "dev" and s["dev"]["rsum"] == dev["rsum"]
    assert dev["qbnorm"]["beta"] == 10 and dev["qbnorm"]["bank_images"] == 40
    assert dev["qbnorm"]["without"]["rsum"] != dev["rsum"]  # the biases change rankings
    assert (soup_run / "report.png").stat().st_size > 1000


def test_soup_refuses_runs_that_do_not_fit(trained_run, second_run, tmp_path):
    from glimpse_model import soup

    cfg0, _ = trained_run
    other = tmp_path / "other"
    shutil.copytree(second_run.run_dir, other)
    v = json.loads((other / "vocab.json").read_text())
    v["tokens"] = v["tokens"][:-1] + ["zzz"]
    (other / "vocab.json").write_text(json.dumps(v))
    with pytest.raises(SystemExit, match="vocabulary"):
        soup.make_soup([cfg0.run_dir, other], tmp_path / "bad")
    with pytest.raises(SystemExit, match="at least two"):
        soup.main([str(cfg0.run_dir), "--out", str(tmp_path / "one"), "--no-dev-eval"])


def test_zoom_view_cached_path_equals_serving_path(soup_run, tiny_store):
    """evaluate.py's cached grids (image, mirror, zoom) give the embeddings image_encoder computes."""
    from glimpse_model.data import load_dataset
    from glimpse_model.evaluate import apply_data_args, load_run
    from glimpse_model.features import compute_grids, load_pixels
    from glimpse_model.encode import encode_grids

    root, version = tiny_store
    model, cfg, _, _ = load_run(soup_run)
    assert model.tta_hflip and model.tta_zoom == 0.75
    ns = type("A", (), {k: None for k in ("source", "flickr8k_dir", "store", "bucket", "dataset")})()
    ns.store_dir, ns.dataset_version = str(root), version
    apply_data_args(cfg, ns)
    ds = load_dataset(cfg)
    ids = ds.splits["dev"][:6]
    spec = json.loads((soup_run / "preprocess.json").read_text())
    with torch.no_grad():
        full = model.encode_image(load_pixels(ds, ids, spec))
        views = [compute_grids(model.backbone, ds, ids, spec, "cpu", flip, zoom=zoom)
                 for flip, zoom in ((False, 0.0), (True, 0.0), (False, 0.75))]
        cached = encode_grids(model, views[0], "cpu", views=views[1:])
        without_zoom = encode_grids(model, views[0], "cpu", views=views[1:2])
    assert (full - cached).abs().max() < 1e-2
    assert (full - without_zoom).abs().max() > 1e-3  # the zoom view really takes part


def test_soup_exports_with_zoom_and_query_bank(soup_run, tiny_store, tmp_path):
    from glimpse_model import evaluate, export
    from glimpse_model.evaluate import load_run
    from glimpse_model.querybank import item_bias, read_bank

    root, version = tiny_store
    out = tmp_path / "export"
    assert export.main(["--run-dir", str(soup_run), "--out", str(out), "--store-dir", str(root),
                        "--dataset-version", version]) == 0
    model, _, _, _ = load_run(soup_run)
    pix = np.random.default_rng(3).uniform(-1, 1, (3, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        ref = model.encode_image(torch.from_numpy(pix)).numpy()
    got = ort.InferenceSession(str(out / "image_encoder.onnx"),
                               providers=["CPUExecutionProvider"]).run(None, {"pixels": pix})[0]
    assert np.abs(got - ref).max() <= 1e-4
    card = (out / "model_card.md").read_text()
    assert "model soup" in card and "centre crop covering 0.75" in card and "query-bank normalisation" in card
    assert "two seeds of one recipe" in card and "schedules per ingredient in soup.json" in card
    assert json.loads((out / "soup.json").read_text())["method"] == "uniform weight average"
    # the query bank: 40 train images and 40 train captions, and golden biases serving can check
    beta, b_img, b_txt = read_bank(out)
    assert beta == 10 and b_img.shape == (40, 256) and b_txt.shape == (40, 256)
    torch.testing.assert_close(b_img.norm(dim=1), torch.ones(40), atol=1e-4, rtol=0)
    gold = json.loads((out / "golden.json").read_text())
    emb = torch.tensor([g["embedding"] for g in gold["images"]])
    torch.testing.assert_close(item_bias(b_txt, emb, beta), torch.tensor(gold["qbnorm"]["image_bias"]), atol=1e-5, rtol=0)
    assert len(gold["qbnorm"]["caption_bias"]) == len(gold["captions"])
    for f in ("querybank.json", "querybank_images.f32", "querybank_captions.f32"):
        assert f in json.loads((out / "checksums.json").read_text())
    # the exported bank gives the same test recall as the PyTorch path
    flags = ["--run-dir", str(soup_run), "--split", "test", "--store-dir", str(root), "--dataset-version", version]
    assert evaluate.main(flags + ["--out", str(tmp_path / "pt.json")]) == 0
    assert evaluate.main(flags + ["--onnx", str(out), "--out", str(tmp_path / "ox.json")]) == 0
    pt, ox = (json.loads((tmp_path / f).read_text()) for f in ("pt.json", "ox.json"))
    assert pt["qbnorm"]["bank_images"] == ox["qbnorm"]["bank_images"] == 40
    for d in ("t2i", "i2t"):
        for k in ("r1", "r5", "r10"):
            assert abs(pt[d][k] - ox[d][k]) <= 100 / 150 + 1e-9  # at most one query's rank moves
