"""Smaller ONNX encoders: the precisions export can write (``--text-precision``/``--image-precision``).

* ``fp32``: as exported.
* ``fp16w``: weights stored as float16 and cast back to float32 when the session loads (onnxruntime
  folds the casts), so the arithmetic stays float32: half the bytes, and an embedding still does
  not depend on the other rows of its batch.
* ``int8w``: every embedding table (a ``Gather`` over a weight) as int8 rows with one float scale
  per row, every ``MatMul`` weight as int8 with one scale per output column (cast and scaled back
  to float32 when the session loads), the other weights as ``fp16w``: about a quarter of the
  bytes, float32 arithmetic, the same batch independence.
* ``int8``: onnxruntime's dynamic quantisation (int8 weights, activations quantised per run). The
  activations' scale comes from the whole batch, so an embedding depends on what it is batched
  with: measured for the record, never shipped (serving micro-batches queries).

    uv run python -m glimpse_model.compress --in runs/x/export/text_encoder.onnx --out /tmp/t.onnx --precision int8w
    # every precision of an fp32 export, ranked on dev as served (the choice export's flags make):
    uv run python -m glimpse_model.compress --compare runs/x/export --flickr8k-dir ../../shared/datasets/flickr8k
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

PRECISIONS = ("fp32", "fp16w", "int8w", "int8")


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


def compress(src: str | Path, dst: str | Path, precision: str) -> None:
    import onnx
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if precision == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
        return
    model = onnx.load(str(src))
    if precision == "int8w":
        embeddings_int8(model)
        matmul_weights_int8(model)
    if precision in ("fp16w", "int8w"):
        weights_fp16(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


VARIANTS = [("fp32", "fp32"), ("fp16w", "fp32"), ("int8", "fp32"), ("fp32", "fp16w"), ("fp32", "int8w"),
            ("fp32", "int8"), ("fp16w", "int8w")]


def compare(folder: Path, ds, split: str = "dev", threads: int = 2) -> list[dict]:
    """Each (image, text) precision of an fp32 export folder: bytes and the split's figures as served."""
    import shutil
    import tempfile
    from .evaluate import served_metrics
    rows = []
    for img_p, txt_p in VARIANTS:
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp) / "v"
            shutil.copytree(folder, d)
            try:
                for f, p in (("image_encoder.onnx", img_p), ("text_encoder.onnx", txt_p)):
                    if p != "fp32":
                        compress(folder / f, d / f, p)
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
    compress(a.src, a.out, a.precision)
    print(f"{a.out}: {Path(a.out).stat().st_size / 1e6:.1f} MB ({a.precision}; from {Path(a.src).stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
