"""Export: ONNX checker, onnxruntime parity with PyTorch, padding independence, golden
vectors, registry layout (version id, checksums, upload, promote)."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from glimpse_model import export
from glimpse_model.data import Tokenizer, image_to_array
from glimpse_model.evaluate import load_run


@pytest.fixture(scope="module")
def exported(trained_run, tiny_store, tmp_path_factory):
    cfg, _ = trained_run
    root, version = tiny_store
    out = tmp_path_factory.mktemp("export") / "m"
    assert export.main(["--run-dir", str(cfg.run_dir), "--out", str(out), "--store-dir", str(root),
                        "--dataset-version", version, "--upload", "--promote"]) == 0
    return cfg, out, root


def _sessions(out):
    return (ort.InferenceSession(str(out / "image_encoder.onnx"), providers=["CPUExecutionProvider"]),
            ort.InferenceSession(str(out / "text_encoder.onnx"), providers=["CPUExecutionProvider"]))


def test_onnx_io_contract(exported):
    _, out, _ = exported
    for f in ("image_encoder.onnx", "text_encoder.onnx"):
        onnx.checker.check_model(onnx.load(str(out / f)))
    isess, tsess = _sessions(out)
    assert [i.name for i in isess.get_inputs()] == ["pixels"]
    assert isess.get_inputs()[0].type == "tensor(float)"
    assert isess.get_inputs()[0].shape[0] == "N" and isess.get_inputs()[0].shape[1:] == [3, 64, 64]
    assert [o.name for o in isess.get_outputs()] == ["embedding"]
    assert [i.name for i in tsess.get_inputs()] == ["token_ids", "lengths"]
    assert tsess.get_inputs()[0].type == "tensor(int64)" and tsess.get_inputs()[0].shape == ["N", "L"]
    assert tsess.get_inputs()[1].type == "tensor(int64)" and tsess.get_inputs()[1].shape == ["N"]


def test_onnx_matches_pytorch(exported):
    cfg, out, _ = exported
    model, _, tok, _ = load_run(cfg.run_dir)
    isess, tsess = _sessions(out)
    rng = np.random.default_rng(1)
    for n in (1, 3, 7):                                          # dynamic batch
        pix = rng.uniform(-1, 1, (n, 3, 64, 64)).astype(np.float32)
        with torch.no_grad():
            ref = model.encode_image(torch.from_numpy(pix)).numpy()
        got = isess.run(None, {"pixels": pix})[0]
        assert got.shape == (n, 256)
        assert np.abs(got - ref).max() <= 1e-4
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    for n, L in ((1, 1), (4, 9), (5, 16)):                        # dynamic batch and length
        lens = rng.integers(1, L + 1, n)
        lens[0] = L
        ids = np.zeros((n, L), dtype=np.int64)
        for i, l in enumerate(lens):
            ids[i, :l] = rng.integers(1, len(tok), l)
        with torch.no_grad():
            ref = model.encode_text(torch.from_numpy(ids), torch.from_numpy(lens)).numpy()
        got = tsess.run(None, {"token_ids": ids, "lengths": lens.astype(np.int64)})[0]
        assert np.abs(got - ref).max() <= 1e-4
    m = json.loads((out / "metrics.json").read_text())
    assert m["export_parity"]["image_max_abs_diff"] <= 1e-4
    assert m["export_parity"]["text_max_abs_diff"] <= 1e-4


def test_text_embedding_independent_of_padding(exported):
    """Serving micro-batches queries of different lengths: |Δ| ≤ 1e-5 in onnxruntime."""
    cfg, out, _ = exported
    tok = Tokenizer.load(out / "vocab.json")
    _, tsess = _sessions(out)
    caps = ["red circle", "a blue square on a grey background that is big", "green", "the yellow triangle sits on purple"]
    solo = [tsess.run(None, {"token_ids": np.array([tok.encode(c)], dtype=np.int64),
                             "lengths": np.array([len(tok.encode(c))], dtype=np.int64)})[0][0] for c in caps]
    ids, lens = tok.batch(caps)
    for extra in (0, 5, 30):
        wide = np.zeros((len(caps), ids.shape[1] + extra), dtype=np.int64)
        wide[:, : ids.shape[1]] = ids
        got = tsess.run(None, {"token_ids": wide, "lengths": lens})[0]
        assert np.abs(got - np.stack(solo)).max() <= 1e-5, extra


def test_golden_vectors(exported):
    cfg, out, _ = exported
    g = json.loads((out / "golden.json").read_text())
    tok = Tokenizer.load(out / "vocab.json")
    spec = json.loads((out / "preprocess.json").read_text())
    isess, tsess = _sessions(out)
    assert len(g["images"]) >= 4 and len(g["captions"]) >= 8
    for im in g["images"]:
        arr = image_to_array(Image.open(out / im["file"]).convert("RGB"), spec)
        assert Image.open(out / im["file"]).format == "PNG"
        np.testing.assert_allclose(arr.reshape(-1)[:8], im["pixels_first8"], atol=1e-6)
        emb = isess.run(None, {"pixels": arr[None]})[0][0]
        np.testing.assert_allclose(emb, im["embedding"], atol=1e-4)
    texts = [c["text"] for c in g["captions"]]
    assert any(any(ord(ch) > 127 for ch in t) for t in texts)          # non-ASCII
    assert any(any(ch.isdigit() for ch in t) for t in texts)
    assert any(len(c["token_ids"]) == tok.max_len for c in g["captions"])   # truncated
    assert any(tok.unk_id in c["token_ids"] for c in g["captions"])        # unknown word
    for c in g["captions"]:
        assert c["token_ids"] == tok.encode(c["text"])
        e = tsess.run(None, {"token_ids": np.array([c["token_ids"]], dtype=np.int64),
                             "lengths": np.array([len(c["token_ids"])], dtype=np.int64)})[0][0]
        np.testing.assert_allclose(e, c["embedding"], atol=1e-4)


def test_registry_layout(exported):
    cfg, out, root = exported
    required = {"image_encoder.onnx", "text_encoder.onnx", "vocab.json", "preprocess.json", "metrics.json",
                "config.json", "report.png", "model_card.md", "golden.json", "checksums.json"}
    assert required <= {p.name for p in out.iterdir()}
    h = hashlib.sha256()
    for f in export.HASHED_FILES:
        h.update((out / f).read_bytes())
    version = "m-" + h.hexdigest()[:16]
    sums = json.loads((out / "checksums.json").read_text())
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"checksums.json"}
    assert set(sums) == files
    for f, s in sums.items():
        assert hashlib.sha256((out / f).read_bytes()).hexdigest() == s
    reg = root / "glimpse" / "models" / version
    assert reg.is_dir()
    for f in sums:
        assert (reg / f).read_bytes() == (out / f).read_bytes()
    assert (reg / "checksums.json").is_file()
    alias = json.loads((root / "glimpse" / "models" / "aliases" / "production.json").read_text())
    assert alias == {"version": version, "previous": []}
    conf = json.loads((out / "config.json").read_text())
    assert conf["backbone"] == "tiny" and conf["git_commit"] and conf["dataset_version_resolved"]
    assert json.loads((out / "metrics.json").read_text())["model_version"] == version


def _strings(v):
    if isinstance(v, dict):
        for x in v.values():
            yield from _strings(x)
    elif isinstance(v, list):
        for x in v:
            yield from _strings(x)
    elif isinstance(v, str):
        yield v


def test_an_export_records_no_path_of_the_machine_that_trained_it(exported, tiny_store, tmp_path_factory):
    """config.json (hashed into the version), metrics.json and the model card name no folder of the
    trainer: not its run, cache or store folders, nor any other absolute path; the dataset is
    recorded by kind, name and version."""
    cfg, out, root = exported
    _, version = tiny_store
    machine = {str(tmp_path_factory.getbasetemp()), cfg.out_dir, cfg.cache_dir, str(root), str(out)}
    conf = json.loads((out / "config.json").read_text())
    assert conf["dataset_source"] == "store:datasets/flickr8k" and conf["dataset_version_resolved"] == version
    assert all(conf[k] == "" for k in export.TRAINER_PATH_KEYS)
    docs = {"config.json": conf, "metrics.json": json.loads((out / "metrics.json").read_text()),
            "model_card.md": (out / "model_card.md").read_text()}
    for name, doc in docs.items():
        for text in _strings(doc):
            assert not any(d in text for d in machine), (name, text)
            assert not export._ABS_PATH.search(text) or name == "model_card.md", (name, text)
    assert "store:datasets/flickr8k" in docs["model_card.md"]


def test_portable_values():
    assert export.portable_source("flickr8k-dir:/work/shared/datasets/flickr8k") == "flickr8k-dir"
    assert export.portable_source("store:fs:/srv/x/glimpse/datasets/flickr8k") == "store:datasets/flickr8k"
    assert export.portable_source("store:minio:http://minio:9000/glimpse/datasets/flickr8k") == "store:datasets/flickr8k"
    assert export.portable_source("store:fs:/a/datasets/f; flickr8k-dir:/b; store:fs:/c/datasets/f") == \
        "store:datasets/f; flickr8k-dir"
    assert export.portable_source("") == ""
    assert export.without_folders("file:/home/me/weights/mnv3.pt") == "file:mnv3.pt"
    assert export.without_folders("/home/me/weights/mnv3.pt") == "mnv3.pt"
    for kept in ("pypi:efficientnet-lite0-57934424.pth", "random-init(seed0)", "auto", "runs/dev/events.jsonl",
                 "minio:http://minio:9000/glimpse", "A dog runs: fast / slow"):
        assert export.without_folders(kept) == kept
    conf = export.portable_config({"out_dir": "/w/runs", "cache_dir": "/w/.cache", "flickr8k_dir": "/d/f8k",
                                   "store_dir": "/d/store", "init_from": "/w/runs/a/best.pt",
                                   "backbone_weights": "/w/mnv3.pt", "weights_source": "file:/w/mnv3.pt",
                                   "dataset_source": "flickr8k-dir:/d/f8k", "dataset": "flickr8k", "epochs": 4})
    assert conf == {"out_dir": "", "cache_dir": "", "flickr8k_dir": "", "store_dir": "", "init_from": "",
                    "backbone_weights": "mnv3.pt", "weights_source": "file:mnv3.pt",
                    "dataset_source": "flickr8k-dir", "dataset": "flickr8k", "epochs": 4}


def test_onnx_evaluation_matches_pytorch(exported, tiny_store):
    from glimpse_model import evaluate
    cfg, out, root = exported
    _, version = tiny_store
    a, b = out.parent / "pt.json", out.parent / "onnx.json"
    evaluate.main(["--run-dir", str(cfg.run_dir), "--split", "dev", "--store-dir", str(root),
                   "--dataset-version", version, "--out", str(a), "--no-cache"])
    evaluate.main(["--run-dir", str(cfg.run_dir), "--split", "dev", "--store-dir", str(root),
                   "--dataset-version", version, "--out", str(b), "--onnx", str(out)])
    ma, mb = json.loads(a.read_text()), json.loads(b.read_text())
    for d in ("t2i", "i2t"):
        for k in ("r1", "r5", "r10"):
            assert abs(ma[d][k] - mb[d][k]) <= 1.0, (d, k, ma[d], mb[d])


def test_robustness_measures_uploads_of_other_sizes_as_served(exported, tiny_store, tmp_path):
    """robustness.py: the split as stored and as each upload (200 px wide at 3:2 → 200×133; a
    3024×2268 JPEG), through the export as served; the stored copy's figures are served_metrics'."""
    from glimpse_model import robustness
    from glimpse_model.data import load_dataset
    from glimpse_model.config import Config
    from glimpse_model.evaluate import Served, served_metrics
    _, out, root = exported
    _, version = tiny_store
    path = tmp_path / "robustness.json"
    assert robustness.main(["--export", str(out), "--split", "test", "--store-dir", str(root),
                            "--dataset-version", version, "--resize-width", "200", "--aspect", "3:2",
                            "--phone", "--out", str(path)]) == 0
    r = json.loads(path.read_text())
    assert list(r["variants"]) == ["copy", "200x133", "phone"] and r["input"] == [64, 64]
    assert r["variants"]["200x133"]["upload"] == {"width": 200, "height": 133, "jpeg_quality": None}
    assert r["variants"]["phone"]["upload"] == {"width": 3024, "height": 2268, "jpeg_quality": 85}
    assert set(r["i2t_r10"]) == set(r["variants"]) and r["variants"]["phone"]["n_images"] == 30
    ds = load_dataset(Config.from_dict({"source": "store", "store_dir": str(root), "dataset_version": version}))
    served = served_metrics(out, ds, "test")
    assert r["variants"]["copy"]["i2t"] == served["i2t"] and r["variants"]["copy"]["t2i"] == served["t2i"]
    # the uploads reach the encoder as other pixels
    enc = Served(out, ds).enc
    ids = ds.splits["test"][:4]
    copy = enc.images("test", ids)
    for upload in (robustness.PHONE, robustness.resized(200, 1.5)):
        assert 1e-4 < (enc.images("test", ids, upload) - copy).abs().max() < 1
