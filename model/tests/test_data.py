"""Tokenizer spec, caption cleaning, dataset readers (published version + raw layout), config."""
from __future__ import annotations

import json
import re

import pytest
import torch

from glimpse_model.config import Config, parse_config
from glimpse_model.data import (Tokenizer, clean_caption, image_id_from_name, load_flickr8k_dir,
                                load_published, preprocess_spec)
from glimpse_model.ci_towers import BiLSTMText, reverse_within_length
from glimpse_model.store import FSStore

from helpers import write_raw_flickr_layout


def spec_tokenize(spec: dict, text: str) -> list[int]:
    """An independent implementation that reads ONLY vocab.json (what the TS side does)."""
    import unicodedata
    s = unicodedata.normalize(spec["unicode_normalization"], text)
    s = re.sub(spec["combining_regex"], "", s)
    if spec["lowercase"]:
        s = s.lower()
    toks = re.findall(spec["token_regex"], s)[: spec["max_len"]]
    index = {t: i for i, t in enumerate(spec["tokens"])}
    ids = [index.get(t, spec["unk_id"]) for t in toks]
    if spec["add_bos"]:
        ids = [spec["bos_id"]] + ids
    if spec["add_eos"]:
        ids = ids + [spec["eos_id"]]
    return ids or [spec["unk_id"]]


def test_tokenizer_spec(tmp_path):
    texts = ["A dog runs .", "a dog jumps", "Two dogs run!", "the dog's ball", "café"]
    tok = Tokenizer.build(texts, min_count=1, max_len=6)
    assert tok.tokens[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert tok.tokens[4] == "dog"                              # most frequent first, then alphabetical
    tok.save(tmp_path / "vocab.json")
    spec = json.loads((tmp_path / "vocab.json").read_text())
    assert spec["token_regex"] == "[a-z0-9]+" and spec["regex_flags"] == "g"
    assert spec["combining_regex"] == "[\\u0300-\\u036f]"    # JS: new RegExp(s, "g")
    assert (spec["pad_id"], spec["unk_id"], spec["bos_id"], spec["eos_id"]) == (0, 1, 2, 3)
    assert spec["add_bos"] is False and spec["add_eos"] is False and spec["max_len"] == 6
    tok2 = Tokenizer.load(tmp_path / "vocab.json")
    cases = {
        "A DOG runs.": ["a", "dog", "runs"],
        "  a   dog\trun\n": ["a", "dog", "run"],
        "Café crème": ["cafe", "creme"],                         # accents stripped
        "the dog's ball": ["the", "dog", "s", "ball"],
        "3 dogs, 12 cats": ["3", "dogs", "12", "cats"],
        "ｆｕｌｌｗｉｄｔｈ": ["fullwidth"],                         # NFKD compatibility
        "naïve—résumé": ["naive", "resume"],
    }
    from glimpse_model.data import basic_tokenize
    for text, want in cases.items():
        assert basic_tokenize(text) == want, text
    for text in list(cases) + ["?!", "", "a a a a a a a a a a dog", "zebra dog"]:
        assert tok2.encode(text) == spec_tokenize(spec, text), text
    assert tok2.encode("?!") == [1]
    assert tok2.encode("zebra dog") == [1, tok2.index["dog"]]
    assert len(tok2.encode("a a a a a a a a a a dog")) == 6
    ids, lens = tok2.batch(["a dog", "dog"])
    assert ids.tolist() == [[tok2.index["a"], tok2.index["dog"]], [tok2.index["dog"], 0]]
    assert lens.tolist() == [2, 1]


def test_clean_caption_and_ids():
    assert clean_caption("  A dog  runs , fast .  ") == "A dog runs, fast."
    assert image_id_from_name("2258277193_586949ec62.jpg.1#0") == "2258277193_586949ec62"
    assert image_id_from_name("1000268201_693b08cb0e.jpg#4") == "1000268201_693b08cb0e"


def test_raw_layout_reader(tmp_path, tiny_data):
    images, captions, splits = tiny_data
    write_raw_flickr_layout(tmp_path / "f8k", images, captions, splits)
    ds = load_flickr8k_dir(tmp_path / "f8k")
    assert ds.splits["train"] == splits["train"]
    first = next(iter(captions))                                # had the ".jpg.1#0" quirk
    assert len(ds.captions[first]) == 5
    assert ds.captions[first][0] == clean_caption(captions[first][0])
    assert ds.read_image(first) == images[first]


def test_published_reader_verifies(tiny_store, tiny_data):
    root, version = tiny_store
    store = FSStore(root, "glimpse")
    ds = load_published(store, "flickr8k", "latest")
    assert ds.version == version
    assert ds.splits["dev"] == tiny_data[2]["dev"]
    iid = ds.splits["train"][0]
    assert ds.read_image(iid) == tiny_data[0][iid]
    assert load_published(store, "flickr8k", version).version == version
    # a corrupted blob is detected
    man = json.loads(store.get(f"datasets/flickr8k/versions/{version}/manifest.json"))
    key = man["images"][iid]["key"]
    bad = FSStore(root, "glimpse")
    orig = store.get(key)
    bad.put(key, orig + b"x")
    try:
        with pytest.raises(ValueError):
            load_published(bad, "flickr8k", version).read_image(iid)
    finally:
        store.put(key, orig)


def test_preprocess_spec():
    s = preprocess_spec("tiny")
    assert s["mean"] == [0.5] * 3 and s["std"] == [0.5] * 3 and s["resize"] == "fill"
    assert s["channel_order"] == "RGB" and s["layout"] == "NCHW" and "formula" in s
    assert preprocess_spec("mobilenet_v3_small")["mean"] == [0.485, 0.456, 0.406]
    with pytest.raises(ValueError, match="no preprocessing for backbone 'mobilenet_v1_075'"):
        preprocess_spec("mobilenet_v1_075")


def test_config_precedence(tmp_path, monkeypatch):
    doc = tmp_path / "c.json"
    doc.write_text(json.dumps({"backbone": "tiny", "text_encoder": "bilstm", "batch_size": 64, "lr": 0.01,
                               "loss": "vsepp"}))
    monkeypatch.setenv("GLIMPSE_TRAIN_CONFIG", json.dumps({"epochs": 3, "batch_size": 16}))
    cfg, _ = parse_config(["--config", str(doc), "--lr", "0.5", "--amp", "false", "--resume"])
    assert cfg.epochs == 3 and cfg.batch_size == 64 and cfg.lr == 0.5 and cfg.loss == "vsepp"
    assert cfg.backbone == "tiny" and cfg.text_encoder == "bilstm"
    assert cfg.amp is False and cfg.resume is True
    with pytest.raises(KeyError):
        Config.from_dict({"no_such_key": 1})


def test_reverse_within_length():
    x = torch.arange(2 * 4).view(2, 4, 1).float()
    y = reverse_within_length(x, torch.tensor([4, 2]))
    assert y[:, :, 0].tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]


def test_text_encoder_padding_invariance_pytorch():
    torch.manual_seed(0)
    enc = BiLSTMText(50, 256, 16, 24, bidirectional=True, layers=2).eval()
    ids = torch.randint(4, 50, (3, 7))
    lens = torch.tensor([7, 3, 5])
    for i, l in enumerate(lens):
        ids[i, l:] = 0
    with torch.no_grad():
        batch = enc(ids, lens)
        wide = enc(torch.cat([ids, torch.zeros(3, 9, dtype=torch.long)], 1), lens)
        solo = torch.cat([enc(ids[i:i + 1, : lens[i]], lens[i:i + 1]) for i in range(3)])
    assert (batch - solo).abs().max() < 1e-6 and (wide - solo).abs().max() < 1e-6
