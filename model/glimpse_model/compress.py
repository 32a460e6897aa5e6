"""Smaller ONNX encoders: the precisions export can write (``--text-precision``/``--image-precision``).

* ``fp32``: as exported.
* ``fp16w``: weights stored as float16 and cast back to float32 when the session loads (onnxruntime
  folds the casts), so the arithmetic stays float32: half the bytes, and an embedding still does
  not depend on the other rows of its batch.
* ``int8w``: every embedding table (a ``Gather`` over a weight) as int8 rows with one float scale
  per row, every ``MatMul`` weight as int8 with one scale per output column (cast and scaled back
  to float32 when the session loads), the other weights as ``fp16w``: about a quarter of the
  bytes, float32 arithmetic, the same batch independence.
* ``int8`` (int8 kernels, for the text tower): every ``MatMul`` over a weight becomes a
  ``MatMulInteger`` — weights int8 with one scale per output column, activations quantised at run
  time with **one scale and zero point per token**, so a caption's embedding still does not
  depend on its batch or its padding (onnxruntime's own dynamic quantisation takes one scale per
  tensor: an embedding then moves by up to 0.04 with its batch-mates). Activations are uint8
  with a per-token zero point (the u8×s8 form x86 VNNI kernels take; see matmul_int8_per_token).
  Embedding tables as in ``int8w``.
* ``int8-static`` (int8 kernels, for the image tower): onnxruntime's static QDQ quantisation,
  weights int8 per channel, activation ranges calibrated on train-split images (``--calibration-
  images``, seeded; recorded in config.json). Fixed scales: batch independence holds.

The int8 modes change the arithmetic, so export gates them on dev (``quality_gate``): recall@10 may
drop at most ``MAX_DROP`` points in each direction against the float32 export, else it refuses.

    uv run python -m glimpse_model.compress --in runs/x/export/text_encoder.onnx --out /tmp/t.onnx --precision int8w
    uv run python -m glimpse_model.compress --in runs/x/export/text_encoder.onnx --out /tmp/t8.onnx --precision int8
    # every precision of an fp32 export, ranked on dev as served (the choice export's flags make):
    uv run python -m glimpse_model.compress --compare runs/x/export --flickr8k-dir ../../shared/datasets/flickr8k
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

PRECISIONS = ("fp32", "fp16w", "int8w", "int8", "int8-static")
#: precisions computed with int8 kernels: gated on dev (quality_gate)
INT8_KERNELS = ("int8", "int8-static")
#: the most recall@10 (points, each direction, dev as served) an int8 export may lose to float32
MAX_DROP = 0.3


def _initializers(model) -> dict:
    return {t.name: t for t in model.graph.initializer}


def _replace_initializer(model, name: str, new_tensors: list, nodes: list) -> None:
    keep = [t for t in model.graph.initializer if t.name != name]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep + new_tensors)
    for n in reversed(nodes):  # at the front, before any consumer (topological order)
        model.graph.node.insert(0, n)


def _int8(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 with one float32 scale per slice along ``axis`` (the max |w| of each row for
    axis=1, of each column for axis=0)."""
    scale = (np.maximum(np.abs(w).max(axis=axis, keepdims=True), 1e-12) / 127.0).astype(np.float32)
    return np.clip(np.rint(w / scale), -127, 127).astype(np.int8), scale


def embeddings_int8(model) -> int:
    """Gather over a float weight → Gather over int8 rows × Gather over the rows' scales."""
    from onnx import TensorProto, helper, numpy_helper
    inits = _initializers(model)
    done = 0
    for node in list(model.graph.node):
        if node.op_type != "Gather" or node.input[0] not in inits:
            continue
        t = inits[node.input[0]]
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        if t.data_type != TensorProto.FLOAT or len(t.dims) != 2 or t.dims[0] * t.dims[1] < 4096 or axis != 0:
            continue
        q, scale = _int8(numpy_helper.to_array(t).astype(np.float32), axis=1)
        base = node.input[0]
        qn, sn = f"{base}__int8", f"{base}__scale"
        ids, out = node.input[1], node.output[0]
        new_nodes = [
            helper.make_node("Gather", [qn, ids], [f"{out}__q"], axis=0),
            helper.make_node("Cast", [f"{out}__q"], [f"{out}__qf"], to=TensorProto.FLOAT),
            helper.make_node("Gather", [sn, ids], [f"{out}__s"], axis=0),
            helper.make_node("Mul", [f"{out}__qf", f"{out}__s"], [out]),
        ]
        idx = list(model.graph.node).index(node)
        model.graph.node.remove(node)
        for k, n in enumerate(new_nodes):
            model.graph.node.insert(idx + k, n)
        _replace_initializer(model, base, [numpy_helper.from_array(q, qn), numpy_helper.from_array(scale, sn)], [])
        inits = _initializers(model)
        done += 1
    return done


def matmul_weights_int8(model) -> int:
    """2-D float MatMul weights → int8 × a per-column scale (Cast + Mul, folded at session load)."""
    from onnx import TensorProto, helper, numpy_helper
    inits = _initializers(model)
    done = 0
    for name in sorted({n.input[1] for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in inits}):
        t = inits[name]
        if t.data_type != TensorProto.FLOAT or len(t.dims) != 2 or t.dims[0] * t.dims[1] < 4096:
            continue
        q, scale = _int8(numpy_helper.to_array(t).astype(np.float32), axis=0)
        qn, sn = f"{name}__int8", f"{name}__scale"
        _replace_initializer(model, name, [numpy_helper.from_array(q, qn), numpy_helper.from_array(scale, sn)], [
            helper.make_node("Cast", [qn], [f"{name}__qf"], to=TensorProto.FLOAT),
            helper.make_node("Mul", [f"{name}__qf", sn], [name])])
        done += 1
    return done


def weights_fp16(model, min_elements: int = 1024) -> int:
    """Large float32 weights → float16 initializers + a Cast back to float32."""
    from onnx import TensorProto, helper, numpy_helper
    done = 0
    for t in list(model.graph.initializer):
        n = int(np.prod(t.dims)) if len(t.dims) else 1
        if t.data_type != TensorProto.FLOAT or n < min_elements:
            continue
        h = numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), f"{t.name}__fp16")
        _replace_initializer(model, t.name, [h], [helper.make_node("Cast", [h.name], [t.name], to=TensorProto.FLOAT)])
        done += 1
    return done


def matmul_int8_per_token(model, min_elements: int = 4096) -> int:
    """MatMul(x, W) → MatMulInteger(q(x), int8 W), rescaled: x quantised per token (last axis).

    Each row of x gets its own uint8 scale s and zero point z over [min(x, 0), max(x, 0)] (so a
    GELU output, nearly all ≥ 0, uses all 256 levels); W is int8 with one scale w per output
    column. onnxruntime's MatMulInteger takes one zero point per tensor, so the product is taken
    without it and corrected: y = s·w·(q·Wq − z·Σ_k Wq). Integer product exact, every row scaled
    alone: batch- and padding-independent."""
    from onnx import TensorProto, helper, numpy_helper
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    added: list = []

    def const(name, arr):
        added.append(numpy_helper.from_array(arr, name))
        return name
    eps, k0, k255 = (const(f"pt__{n}", np.array(v, np.float32)) for n, v in (("eps", 1e-8), ("0", 0.0), ("255", 255.0)))
    quantised: dict[str, tuple[str, str, str]] = {}   # activation → (uint8 tensor, zero point, scale), per token
    nodes, done = [], 0
    for node in g.node:
        w = inits.get(node.input[1]) if node.op_type == "MatMul" else None
        if w is None or w.data_type != TensorProto.FLOAT or len(w.dims) != 2 or w.dims[0] * w.dims[1] < min_elements:
            nodes.append(node)
            continue
        x, y = node.input[0], node.output[0]
        if x not in quantised:  # q/k/v share their input: quantised once
            p = f"{x}__pt"
            mk = lambda op, ins, out, **kw: helper.make_node(op, ins, [p + out], **kw)  # noqa: E731
            nodes += [mk("ReduceMax", [x], "max", axes=[-1], keepdims=1),
                      mk("ReduceMin", [x], "min", axes=[-1], keepdims=1),
                      mk("Max", [p + "max", k0], "hi"), mk("Min", [p + "min", k0], "lo"),   # 0 stays exact
                      mk("Sub", [p + "hi", p + "lo"], "range"), mk("Max", [p + "range", eps], "range_e"),
                      mk("Div", [p + "range_e", k255], "s"),
                      mk("Div", [p + "lo", p + "s"], "lo_s"), mk("Neg", [p + "lo_s"], "z_f"),
                      mk("Round", [p + "z_f"], "z"),
                      mk("Div", [x, p + "s"], "xs"), mk("Add", [p + "xs", p + "z"], "xz"),
                      mk("Round", [p + "xz"], "xr"), mk("Clip", [p + "xr", k0, k255], "xc"),
                      mk("Cast", [p + "xc"], "q", to=TensorProto.UINT8)]
            quantised[x] = (p + "q", p + "z", p + "s")
        q, z, s = quantised[x]
        wq, ws = _int8(numpy_helper.to_array(w).astype(np.float32), axis=0)
        wn, wsn = const(f"{w.name}__int8", wq), const(f"{w.name}__wscale", ws.reshape(-1))
        colsum = const(f"{w.name}__colsum", wq.astype(np.int64).sum(axis=0).astype(np.float32))
        nodes += [helper.make_node("MatMulInteger", [q, wn], [y + "__i32"]),
                  helper.make_node("Cast", [y + "__i32"], [y + "__f"], to=TensorProto.FLOAT),
                  helper.make_node("Mul", [z, colsum], [y + "__zc"]),
                  helper.make_node("Sub", [y + "__f", y + "__zc"], [y + "__c"]),
                  helper.make_node("Mul", [y + "__c", wsn], [y + "__cw"]),
                  helper.make_node("Mul", [y + "__cw", s], [y])]
        done += 1
    del g.node[:]
    g.node.extend(nodes)
    used = {i for n in g.node for i in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep + [t for t in added if t.name in used])
    return done


def fold_to_fp32(src: str | Path, dst: str | Path) -> None:
    """An ``fp16w``/``int8w`` file back to plain float32 initializers: the weights its session
    computes with (constant Cast/Mul chains evaluated, int8 embedding rows × their scales). An
    export that shipped only stored-small weights is re-quantised from this (requantize.py)."""
    import onnx
    from onnx import helper, numpy_helper
    model = onnx.load(str(src))
    g = model.graph
    vals = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    nodes = list(g.node)
    changed = True
    while changed:  # constant Cast / Mul over initializers, in order (a Cast feeds a Mul)
        changed = False
        for n in list(nodes):
            if n.op_type == "Cast" and n.input[0] in vals:
                vals[n.output[0]] = vals[n.input[0]].astype(np.float32)
            elif n.op_type == "Mul" and all(i in vals for i in n.input):
                vals[n.output[0]] = (vals[n.input[0]] * vals[n.input[1]]).astype(np.float32)
            else:
                continue
            nodes.remove(n)
            changed = True
    users: dict[str, list] = {}
    for n in nodes:
        for i in n.input:
            users.setdefault(i, []).append(n)
    for n in list(nodes):  # Gather(int8 rows) → Cast → Mul(Gather(row scales)) : embeddings_int8
        if n.op_type != "Gather" or not n.input[0].endswith("__int8") or n.input[0][:-6] + "__scale" not in vals:
            continue
        base = n.input[0][:-6]
        cast = users[n.output[0]][0]
        mul = users[cast.output[0]][0]
        scale_gather = next(x for x in nodes if x.op_type == "Gather" and x.input[0] == base + "__scale")
        vals[base] = (vals[n.input[0]].astype(np.float32) * vals[base + "__scale"]).astype(np.float32)
        at = nodes.index(n)
        for x in (n, cast, mul, scale_gather):
            nodes.remove(x)
        nodes.insert(at, helper.make_node("Gather", [base, n.input[1]], [mul.output[0]], axis=0))
    used = {i for n in nodes for i in n.input} | {o.name for o in g.output}
    del g.node[:]
    g.node.extend(nodes)
    del g.initializer[:]
    g.initializer.extend(numpy_helper.from_array(v, k) for k, v in vals.items() if k in used)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def calibration_images(ds, spec: dict, split: str = "train", n: int = 150, seed: int = 1234) -> tuple[list[dict], dict]:
    """``n`` images of ``split`` drawn with ``seed`` as encoder inputs (one per feed), and the
    record of the draw for config.json."""
    import random
    from .features import load_pixels
    ids = sorted(i for i in ds.splits.get(split, []) if ds.captions.get(i))
    random.Random(seed).shuffle(ids)
    ids = ids[:n]
    return ([{"pixels": load_pixels(ds, [i], spec).numpy()} for i in ids],
            {"split": split, "images": len(ids), "seed": seed, "dataset_version": ds.version,
             "method": "minmax", "first_ids": ids[:5]})


def _static_int8(src: Path, dst: Path, feeds: list[dict]) -> None:
    import tempfile
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Feeds(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        # Not skip_symbolic_shape: with it skipped, quant_pre_process's ONNX shape step re-saves the
        # model it loaded, dropping its own onnxruntime rewrites (onnxruntime 1.30). Among those, Pad
        # fused into the Conv it feeds: EfficientNet-Lite's TF "same" padding exports as a Pad before
        # 22 of its 64 Convs, and a Pad left in place runs in float between a DequantizeLinear and a
        # QuantizeLinear: 40 % of the int8 image tower's time.
        quant_pre_process(str(src), str(pre))
        quantize_static(str(pre), str(dst), Feeds(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    import onnx
    model = onnx.load(str(dst))
    used = {i for n in model.graph.node for i in n.input}
    keep = [t for t in model.graph.initializer if t.name in used]  # else onnxruntime warns of each at every load
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def compress(src: str | Path, dst: str | Path, precision: str, calibration: list[dict] | None = None) -> None:
    import onnx
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if precision == "int8-static":
        if not calibration:
            raise ValueError("int8-static needs calibration inputs (calibration_images)")
        _static_int8(Path(src), Path(dst), calibration)
        return
    model = onnx.load(str(src))
    if precision in ("int8w", "int8"):
        embeddings_int8(model)
    if precision == "int8":
        matmul_int8_per_token(model)
    if precision == "int8w":
        matmul_weights_int8(model)
    if precision in ("fp16w", "int8w", "int8"):
        weights_fp16(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def quality_gate(fp32: dict, served: dict, max_drop: float = MAX_DROP) -> list[str]:
    """What an int8 export lost beyond ``max_drop`` recall@10 points per direction (empty: passes)."""
    return [f"{d} R@10 {served[d]['r10']:.2f} vs {fp32[d]['r10']:.2f} float32 (−{fp32[d]['r10'] - served[d]['r10']:.2f} "
            f"points, the gate allows {max_drop:g})"
            for d in ("t2i", "i2t") if fp32[d]["r10"] - served[d]["r10"] > max_drop + 1e-9]


VARIANTS = [("fp32", "fp32"), ("fp16w", "int8w"), ("int8-static", "fp32"), ("fp32", "int8"), ("int8-static", "int8")]


def compare(folder: Path, ds, split: str = "dev", threads: int = 2) -> list[dict]:
    """Each (image, text) precision of an fp32 export folder: bytes and the split's figures as served."""
    import shutil
    import tempfile
    from .evaluate import served_metrics
    rows = []
    calib, _ = calibration_images(ds, json.loads((folder / "preprocess.json").read_text()))
    for img_p, txt_p in VARIANTS:
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp) / "v"
            shutil.copytree(folder, d)
            try:
                for f, p in (("image_encoder.onnx", img_p), ("text_encoder.onnx", txt_p)):
                    if p != "fp32":
                        compress(folder / f, d / f, p, calib)
                m = served_metrics(d, ds, split, threads)
            except Exception as e:  # e.g. a quantiser output onnxruntime refuses: reported, not fatal
                rows.append({"image": img_p, "text": txt_p, "failed": f"{type(e).__name__}: {str(e)[:200]}"})
                print(json.dumps(rows[-1]), flush=True)
                continue
            rows.append({"image": img_p, "text": txt_p, "image_mb": round((d / "image_encoder.onnx").stat().st_size / 1e6, 1),
                         "text_mb": round((d / "text_encoder.onnx").stat().st_size / 1e6, 1),
                         "t2i_r10": m["t2i"]["r10"], "i2t_r10": m["i2t"]["r10"], "rsum": m["rsum"]})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--in", dest="src")
    ap.add_argument("--out")
    ap.add_argument("--precision", choices=PRECISIONS)
    ap.add_argument("--compare", help="an fp32 export folder: rank every precision on --split as served")
    ap.add_argument("--split", default="dev")
    from .evaluate import add_data_args, apply_data_args
    from .config import Config
    from .data import load_dataset
    add_data_args(ap)
    a = ap.parse_args(argv)
    if a.compare:
        cfg = Config()
        if not apply_data_args(cfg, a):
            ap.error("--compare needs the dataset (--flickr8k-dir or --store-dir …)")
        compare(Path(a.compare), load_dataset(cfg), a.split)
        return 0
    if not (a.src and a.out and a.precision):
        ap.error("--in, --out and --precision (or --compare)")
    calib = None
    if a.precision == "int8-static":
        cfg = Config()
        if not apply_data_args(cfg, a):
            ap.error("int8-static calibrates on the train split: name the dataset (--flickr8k-dir or --store-dir …)")
        spec = json.loads((Path(a.src).parent / "preprocess.json").read_text())
        calib, _ = calibration_images(load_dataset(cfg), spec)
    compress(a.src, a.out, a.precision, calib)
    print(f"{a.out}: {Path(a.out).stat().st_size / 1e6:.1f} MB ({a.precision}; from {Path(a.src).stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
