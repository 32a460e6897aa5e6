"""Data: dataset sources, caption cleaning, the tokenizer and image preprocessing.

Two sources give the same in-memory ``ImageTextDataset``:

* a **published dataset version** in an object store (folder store or MinIO/S3):
  ``datasets/<name>/latest.json`` → manifest → captions / splits / image blobs;
* the **raw Flickr8K archive layout** (``Flickr8k_Dataset.zip`` + ``Flickr8k_text.zip``,
  or the extracted folders), cleaned with the same rules as the pipeline.

Tokenizer spec (reproduced exactly by the TypeScript serving code; see ``vocab.json``):

1. ``s = s.normalize("NFKD")``                     (Unicode compatibility decomposition)
2. remove combining marks: ``s.replace(/[\\u0300-\\u036f]/g, "")``
3. ``s = s.toLowerCase()``
4. tokens = all matches of ``/[a-z0-9]+/g``        (everything else separates tokens)
5. keep the first ``max_len`` tokens; if there are none, the sequence is ``[<unk>]``
6. id = vocab index of the token, ``<unk>`` (1) if absent; no ``<bos>``/``<eos>`` added
7. batch: right-pad with ``<pad>`` (0); ``lengths`` = number of real tokens.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import unicodedata
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from .config import native_image_size

# --------------------------------------------------------------------------------------
# Caption cleaning (same rules as the data pipeline)
# --------------------------------------------------------------------------------------
_WS = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,!?;:])")


def clean_caption(s: str) -> str:
    """Trim, collapse whitespace, drop spaces before punctuation. Case is kept."""
    s = _WS.sub(" ", s).strip()
    s = _SPACE_BEFORE_PUNCT.sub(r"\1", s)
    return s


def image_id_from_name(name: str) -> str:
    """``1000268201_693b08cb0e.jpg#0`` / ``2258277193_586949ec62.jpg.1#0`` → bare id."""
    name = name.split("#", 1)[0].strip()
    i = name.lower().find(".jpg")
    return name[:i] if i >= 0 else name


# --------------------------------------------------------------------------------------
# Dataset container
# --------------------------------------------------------------------------------------
@dataclass
class ImageTextDataset:
    captions: dict[str, list[str]]          # image_id -> cleaned captions
    splits: dict[str, list[str]]            # split -> image ids
    read_image: Callable[[str], bytes]      # image_id -> encoded image bytes
    source: str = ""
    version: str = ""
    meta: dict = field(default_factory=dict)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(self.source.encode())
        h.update(self.version.encode())
        for s in sorted(self.splits):
            h.update(s.encode())
            h.update("\n".join(self.splits[s]).encode())
        return h.hexdigest()[:16]


def _read_member(zf: zipfile.ZipFile, suffix: str) -> bytes:
    for n in zf.namelist():
        if n.endswith(suffix):
            return zf.read(n)
    raise FileNotFoundError(suffix)


def load_flickr8k_dir(path: str | Path) -> ImageTextDataset:
    """Read the raw Flickr8K layout: the two zips, or their extracted contents."""
    root = Path(path)
    text_zip = root / "Flickr8k_text.zip"
    img_zip = root / "Flickr8k_Dataset.zip"
    if text_zip.is_file():
        with zipfile.ZipFile(text_zip) as zf:
            token = _read_member(zf, "Flickr8k.token.txt").decode("utf-8")
            lists = {s: _read_member(zf, f"Flickr_8k.{s}Images.txt").decode("utf-8")
                     for s in ("train", "dev", "test")}
    else:
        def find(name: str) -> Path:
            hits = list(root.rglob(name))
            if not hits:
                raise FileNotFoundError(f"{name} not found under {root}")
            return hits[0]
        token = find("Flickr8k.token.txt").read_text("utf-8")
        lists = {s: find(f"Flickr_8k.{s}Images.txt").read_text("utf-8") for s in ("train", "dev", "test")}

    captions: dict[str, list[tuple[int, str]]] = {}
    for line in token.splitlines():
        if not line.strip() or "\t" not in line:
            continue
        name, cap = line.split("\t", 1)
        iid = image_id_from_name(name)
        try:
            k = int(name.rsplit("#", 1)[1])
        except (IndexError, ValueError):
            k = len(captions.get(iid, []))
        c = clean_caption(cap)
        if c:
            captions.setdefault(iid, []).append((k, c))
    caps = {iid: [c for _, c in sorted(v, key=lambda t: t[0])] for iid, v in captions.items()}
    splits = {s: [image_id_from_name(x) for x in txt.split() if x.strip()] for s, txt in lists.items()}

    if img_zip.is_file():
        zf_holder: dict[str, zipfile.ZipFile] = {}
        index: dict[str, str] = {}
        with zipfile.ZipFile(img_zip) as zf:
            for n in zf.namelist():
                if n.lower().endswith(".jpg") and "__MACOSX" not in n:
                    index[Path(n).name[:-4]] = n

        def read_image(iid: str) -> bytes:
            zf = zf_holder.get("zf")
            if zf is None:
                zf = zf_holder["zf"] = zipfile.ZipFile(img_zip)
            return zf.read(index[iid])
    else:
        folder = next((p for p in (root / "Flicker8k_Dataset", root / "Flickr8k_Dataset", root / "images")
                       if p.is_dir()), None)
        if folder is None:
            raise FileNotFoundError(f"no Flickr8k_Dataset.zip or image folder under {root}")

        def read_image(iid: str) -> bytes:
            return (folder / f"{iid}.jpg").read_bytes()

    return ImageTextDataset(caps, splits, read_image, source=f"flickr8k-dir:{root.resolve()}",
                            version="raw", meta={"counts": {s: len(v) for s, v in splits.items()}})


MANIFEST_SCHEMA = "glimpse.dataset.manifest/v1"


def load_published(store, dataset: str = "flickr8k", version: str = "latest",
                   verify: bool = True) -> ImageTextDataset:
    """Read a dataset version published by the data pipeline (see the contract)."""
    if version == "latest":
        latest = json.loads(store.get(f"datasets/{dataset}/latest.json"))
        version = latest["version"]
        mkey = latest.get("manifest") or f"datasets/{dataset}/versions/{version}/manifest.json"
    else:
        mkey = f"datasets/{dataset}/versions/{version}/manifest.json"
    raw = store.get(mkey)
    man = json.loads(raw)
    if man.get("schema") != MANIFEST_SCHEMA:
        raise ValueError(f"unexpected manifest schema {man.get('schema')!r}")
    derived = hashlib.sha256(raw).hexdigest()[:16]
    if verify and man.get("version", derived) != version and derived != version:
        raise ValueError(f"manifest does not match version {version} (sha256 prefix {derived})")

    def fetch(ref: dict) -> bytes:
        b = store.get(ref["key"])
        if verify and "sha256" in ref and hashlib.sha256(b).hexdigest() != ref["sha256"]:
            raise ValueError(f"sha256 mismatch for {ref['key']}")
        return b

    caps = json.loads(fetch(man["captions"]))
    splits = json.loads(fetch(man["splits"]))
    caps = {k: [clean_caption(c) for c in v if clean_caption(c)] for k, v in caps.items()}
    images = man["images"]

    def read_image(iid: str) -> bytes:
        return fetch(images[iid])

    return ImageTextDataset(caps, {k: list(v) for k, v in splits.items()}, read_image,
                            source=f"store:{store.describe()}/datasets/{dataset}", version=version,
                            meta={"manifest_key": mkey, "counts": man.get("counts", {})})


def load_dataset(cfg) -> ImageTextDataset:
    from .store import open_store
    src = cfg.source
    if src == "auto":
        src = "flickr8k-dir" if cfg.flickr8k_dir else "store"
    if src == "flickr8k-dir":
        if not cfg.flickr8k_dir:
            raise ValueError("--flickr8k-dir is required for source=flickr8k-dir")
        ds = load_flickr8k_dir(cfg.flickr8k_dir)
    elif src == "store":
        store = open_store(cfg.store, cfg.store_dir, cfg.bucket)
        if store is None:
            raise ValueError("no data source: give --flickr8k-dir, --store-dir or MINIO_ENDPOINT")
        ds = load_published(store, cfg.dataset, cfg.dataset_version)
    else:
        raise ValueError(f"unknown source {src}")
    return ds


# --------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------
PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = [PAD, UNK, BOS, EOS]
TOKEN_REGEX = "[a-z0-9]+"
COMBINING_REGEX = "[\\u0300-\\u036f]"
_TOKEN_RE = re.compile(TOKEN_REGEX)
_COMBINING_RE = re.compile(COMBINING_REGEX)


def basic_tokenize(text: str) -> list[str]:
    s = unicodedata.normalize("NFKD", text)
    s = _COMBINING_RE.sub("", s)
    s = s.lower()
    return _TOKEN_RE.findall(s)


class Tokenizer:
    def __init__(self, tokens: list[str], max_len: int = 32):
        assert tokens[:4] == SPECIALS, tokens[:4]
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.max_len = max_len
        self.pad_id, self.unk_id, self.bos_id, self.eos_id = 0, 1, 2, 3

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def build(cls, texts, min_count: int = 4, max_len: int = 32) -> "Tokenizer":
        cnt = Counter()
        for t in texts:
            cnt.update(basic_tokenize(t))
        words = sorted((w for w, c in cnt.items() if c >= min_count and w not in SPECIALS),
                       key=lambda w: (-cnt[w], w))
        tok = cls(SPECIALS + words, max_len)
        tok.min_count = min_count
        return tok

    def encode(self, text: str) -> list[int]:
        toks = basic_tokenize(text)[: self.max_len]
        if not toks:
            return [self.unk_id]
        return [self.index.get(t, self.unk_id) for t in toks]

    def batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        seqs = [self.encode(t) for t in texts]
        return pad_batch(seqs, self.pad_id)

    def spec(self) -> dict:
        return {
            "schema": "glimpse.vocab/v1",
            "type": "word-regex",
            "steps": [
                "s = text.normalize('NFKD')",
                "s = s.replace(new RegExp(combining_regex, 'g'), '')",
                "s = s.toLowerCase()",
                "tokens = s.match(new RegExp(token_regex, 'g')) || []",
                "tokens = tokens.slice(0, max_len)",
                "ids = tokens.map(t => index_of(t) ?? unk_id); if (ids.length === 0) ids = [unk_id]",
            ],
            "unicode_normalization": "NFKD",
            "combining_regex": COMBINING_REGEX,
            "lowercase": True,
            "token_regex": TOKEN_REGEX,
            "regex_flags": "g",
            "max_len": self.max_len,
            "truncation": "keep the first max_len tokens",
            "empty": "a text with no tokens encodes as [unk_id]",
            "add_bos": False,
            "add_eos": False,
            "pad_id": self.pad_id, "unk_id": self.unk_id, "bos_id": self.bos_id, "eos_id": self.eos_id,
            "padding": "right-pad token_ids with pad_id to the batch's longest sequence",
            "model_inputs": {
                "token_ids": "int64 [N, L], right-padded with pad_id",
                "lengths": "int64 [N], number of real tokens per row (>= 1)",
            },
            "min_count": getattr(self, "min_count", None),
            "size": len(self.tokens),
            "tokens": self.tokens,
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.spec(), ensure_ascii=True, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Tokenizer":
        d = json.loads(Path(path).read_text())
        tok = cls(d["tokens"], d["max_len"])
        tok.min_count = d.get("min_count")
        return tok


class WordPieceTokenizer:
    """A pretrained text tower's own tokenizer (BERT WordPiece from its ``tokenizer.json``, run by
    Hugging Face ``tokenizers``): [CLS] pieces [SEP], truncated to ``max_len`` ids, no padding.

    ``vocab.json`` (type ``hf-tokenizer``) embeds the whole ``tokenizer.json`` with padding off
    and truncation at ``max_len``, so serving (``@huggingface/tokenizers``) runs the same
    normaliser, pre-tokeniser, model and post-processor from the same document."""

    def __init__(self, tokenizer_json: dict, max_len: int = 40, tokenizer_config: dict | None = None):
        from tokenizers import Tokenizer as HFTokenizer
        self.config = dict(tokenizer_config or {})
        doc = {**tokenizer_json, "padding": None,
               "truncation": {"direction": "Right", "max_length": max_len, "strategy": "LongestFirst", "stride": 0}}
        self.doc = doc
        self.hf = HFTokenizer.from_str(json.dumps(doc))
        self.max_len = max_len
        vocab = doc["model"]["vocab"]
        self.pad_id = vocab.get("[PAD]", 0)
        self.unk_id = vocab[doc["model"].get("unk_token", "[UNK]")]
        self.size = len(vocab)
        # what checkpoints compare to tell vocabularies apart (``tokens`` for the word-regex one)
        self.tokens = [f"hf-tokenizer:{hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]}"]

    @classmethod
    def from_file(cls, path: str | Path, max_len: int = 40) -> "WordPieceTokenizer":
        """``tokenizer.json`` (and ``tokenizer_config.json`` beside it)."""
        path = Path(path)
        conf = path.with_name("tokenizer_config.json")
        return cls(json.loads(path.read_text("utf-8")), max_len,
                   json.loads(conf.read_text("utf-8")) if conf.is_file() else None)

    def __len__(self) -> int:
        return self.size

    def encode(self, text: str) -> list[int]:
        return list(self.hf.encode(text).ids)

    def batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return pad_batch([self.encode(t) for t in texts], self.pad_id)

    def spec(self) -> dict:
        return {
            "schema": "glimpse.vocab/v1",
            "type": "hf-tokenizer",
            "note": "run `tokenizer` with Hugging Face tokenizers (Python `tokenizers`, JS "
                    "`@huggingface/tokenizers`): ids = encode(text).ids, special tokens included",
            "max_len": self.max_len,
            "pad_id": self.pad_id, "unk_id": self.unk_id,
            "padding": "right-pad token_ids with pad_id to the batch's longest sequence",
            "model_inputs": {
                "token_ids": "int64 [N, L], right-padded with pad_id",
                "lengths": "int64 [N], number of real tokens per row ([CLS] and [SEP] included)",
            },
            "size": self.size,
            "tokenizer": self.doc,
            "tokenizer_config": self.config,
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.spec(), ensure_ascii=True) + "\n")


def load_tokenizer(path: str | Path):
    """The tokenizer a ``vocab.json`` describes (word-regex or hf-tokenizer)."""
    d = json.loads(Path(path).read_text("utf-8"))
    if d.get("type") == "hf-tokenizer":
        return WordPieceTokenizer(d["tokenizer"], d["max_len"], d.get("tokenizer_config"))
    return Tokenizer.load(path)


def pad_batch(seqs: list[list[int]], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    L = max(len(s) for s in seqs)
    ids = np.full((len(seqs), L), pad_id, dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
    return ids, np.array([len(s) for s in seqs], dtype=np.int64)


# --------------------------------------------------------------------------------------
# Image preprocessing
# --------------------------------------------------------------------------------------
def preprocess_spec(backbone: str, size: int = 0) -> dict:
    """What serving does to an upload before image_encoder.onnx (preprocess.json): squash to the
    square input (``size``; 0: the backbone's native size, config.NATIVE_IMAGE_SIZE), normalise."""
    if backbone.startswith("efficientnet_lite"):  # TF's Lite builder: (x - 127) / 128
        mean, std = [127.0 / 255.0] * 3, [128.0 / 255.0] * 3
    elif backbone == "mobilenet_v3_small":  # torchvision's ImageNet statistics
        mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    elif backbone == "tiny":  # random weights: x/127.5 - 1  ==  (x/255 - 0.5) / 0.5
        mean, std = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
    else:
        raise ValueError(f"no preprocessing for backbone {backbone!r}")
    size = size or native_image_size(backbone)
    return {
        "schema": "glimpse.preprocess/v1",
        "width": size, "height": size,
        "resize": "fill",
        "resize_note": "squash to exactly width x height, aspect ratio NOT kept (matches the "
                       "224x224 Flickr8K copy); skipped when the image already has that size",
        "resize_kernel": "bilinear",
        "color_space": "sRGB", "alpha": "drop (flatten is not applied; use RGB channels only)",
        "channel_order": "RGB", "layout": "NCHW", "dtype": "float32",
        "scale": 1.0 / 255.0,
        "mean": mean, "std": std,
        "formula": "value[c,y,x] = (pixel[y,x,c] / 255 - mean[c]) / std[c]",
        "input_name": "pixels",
    }


def open_rgb(data: bytes) -> Image.Image:
    """Encoded image → RGB at its own size."""
    return Image.open(io.BytesIO(data)).convert("RGB")


def squash(im: Image.Image, size: int) -> Image.Image:
    """Resize "fill" to ``size``×``size`` (bilinear, aspect not kept), as serving does; an image of
    that size already is left as it is."""
    return im if im.size == (size, size) else im.resize((size, size), Image.BILINEAR)


def decode_image(data: bytes, size: int = 224) -> Image.Image:
    return squash(open_rgb(data), size)


def image_to_array(im: Image.Image, spec: dict) -> np.ndarray:
    """PIL RGB image → float32 CHW array following ``spec`` exactly."""
    a = np.asarray(im, dtype=np.float32)  # H W C
    mean = np.array(spec["mean"], dtype=np.float32)
    std = np.array(spec["std"], dtype=np.float32)
    a = (a / np.float32(255.0) - mean) / std
    return np.ascontiguousarray(a.transpose(2, 0, 1))
