"""compress.py on small real graphs: the int8 kernels' batch independence, folding stored-small
weights back to float32, and the quality gate's arithmetic."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from glimpse_model.compress import compress, fold_to_fp32, quality_gate


def _mlp(path, seed=0):
    """x[N,L,64] → MatMul(64×128) → Relu → MatMul(128×32): a transformer block's linear layers."""
    rng = np.random.default_rng(seed)
    w1, w2 = rng.normal(0, 0.1, (64, 128)).astype(np.float32), rng.normal(0, 0.1, (128, 32)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["y"])], "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "L", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "L", 32])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_int8_kernels_are_per_token_so_a_row_does_not_depend_on_its_batch(tmp_path):
    _mlp(tmp_path / "f.onnx")
    compress(tmp_path / "f.onnx", tmp_path / "q.onnx", "int8")
    ops = [n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node]
    assert ops.count("MatMulInteger") == 2 and "MatMul" not in ops
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (4, 7, 64)).astype(np.float32)
    x[2] *= 50                                     # a batch-mate with far larger activations
    batch = _run(tmp_path / "q.onnx", x)
    alone = np.concatenate([_run(tmp_path / "q.onnx", x[i:i + 1]) for i in range(4)])
    assert np.abs(batch - alone).max() <= 1e-6
    ref = _run(tmp_path / "f.onnx", x)
    rel = np.abs(batch - ref).max(axis=-1) / np.abs(ref).max(axis=-1)
    assert rel.max() < 0.05                        # int8 arithmetic, close to float32


def test_stored_small_weights_fold_back_to_the_float32_the_session_computes(tmp_path):
    _mlp(tmp_path / "f.onnx")
    x = np.random.default_rng(2).normal(0, 1, (2, 3, 64)).astype(np.float32)
    for p in ("int8w", "fp16w"):
        compress(tmp_path / "f.onnx", tmp_path / f"{p}.onnx", p)
        fold_to_fp32(tmp_path / f"{p}.onnx", tmp_path / f"{p}-back.onnx")
        model = onnx.load(str(tmp_path / f"{p}-back.onnx"))
        assert {n.op_type for n in model.graph.node} == {"MatMul", "Relu"}
        assert all(t.data_type == TensorProto.FLOAT for t in model.graph.initializer)
        assert np.abs(_run(tmp_path / f"{p}-back.onnx", x) - _run(tmp_path / f"{p}.onnx", x)).max() == 0


def test_quality_gate_refuses_a_drop_beyond_the_limit_in_either_direction():
    f32 = {"t2i": {"r10": 68.88}, "i2t": {"r10": 73.8}}
    assert quality_gate(f32, {"t2i": {"r10": 68.58}, "i2t": {"r10": 74.5}}) == []      # −0.30: allowed
    refused = quality_gate(f32, {"t2i": {"r10": 68.90}, "i2t": {"r10": 73.4}})
    assert len(refused) == 1 and refused[0].startswith("i2t R@10 73.40 vs 73.80") and "−0.40" in refused[0]


def test_static_int8_folds_the_same_padding_into_the_convs(tmp_path):
    """EfficientNet-Lite's TF "same" padding as torch exports it (a Pad whose pads are computed
    by constant nodes, then a Conv without pads): int8-static leaves no Pad running in float
    between the int8 Convs, and computes what the float graph computes."""
    import torch

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Conv2d(3, 8, 1)
            self.conv = torch.nn.Conv2d(8, 8, 3, stride=2, padding=0, groups=8)
            self.pad = torch.nn.ZeroPad2d((0, 1, 0, 1))  # the Lite port's static "same" padding

        def forward(self, x):
            return self.conv(self.pad(torch.relu(self.stem(x))))

    src, dst = tmp_path / "f.onnx", tmp_path / "q.onnx"
    torch.manual_seed(0)
    torch.onnx.export(Block().eval(), (torch.randn(1, 3, 16, 16),), str(src), input_names=["pixels"],
                      output_names=["y"], dynamic_axes={"pixels": {0: "N"}}, opset_version=17, dynamo=False)
    assert "Pad" in {n.op_type for n in onnx.load(str(src)).graph.node}
    rng = np.random.default_rng(0)
    feeds = [{"pixels": rng.random((1, 3, 16, 16), dtype=np.float32)} for _ in range(8)]
    compress(src, dst, "int8-static", feeds)
    ops = {n.op_type for n in onnx.load(str(dst)).graph.node}
    assert "Pad" not in ops and "Conv" in ops and "QuantizeLinear" in ops, ops
    x = feeds[0]["pixels"]
    ref = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, {"pixels": x})[0]
    got = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, {"pixels": x})[0]
    assert ref.shape == got.shape and np.abs(ref - got).max() < 0.05 * np.abs(ref).max()
