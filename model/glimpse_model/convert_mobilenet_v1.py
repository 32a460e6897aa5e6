"""Port the TF.js MobileNetV1-0.75 (Keras layers model) to a PyTorch state dict.

    uv run python -m glimpse_model.convert_mobilenet_v1 \
        --pretrained-dir ../../shared/pretrained \
        --out .cache/mobilenet_v1_075.pt \
        --verify-flickr8k ../../shared/datasets/flickr8k

Reads ``model.json`` (Keras topology + weights manifest) and the raw little-endian
float32 shards, converts HWIO kernels to PyTorch OIHW (depthwise ``[kh,kw,C,1]`` →
``[C,1,kh,kw]``), maps Keras BN (gamma, beta, moving_mean, moving_variance; eps 1e-3) to
BatchNorm2d, and prints the top-5 ImageNet classes for a few real images
(a skier → "ski", dogs → dog breeds) so the port can be checked against the TF.js model.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

TFJS_DIRNAME = "mobilenet_v1_0.75_224_tfjs"

# A few Flickr8K images with an obvious subject, used by --verify-flickr8k.
VERIFY_IMAGES = {
    "skier": "108898978_7713be88fc",
    "skier2": "1397923690_d3bf1f799e",
    "dogs": "1001773457_577c3a7d70",
    "dog": "2513260012_03d33305cf",
}


def tfjs_dir(path: str | Path) -> Path:
    p = Path(path)
    if (p / "model.json").is_file():
        return p
    if (p / TFJS_DIRNAME / "model.json").is_file():
        return p / TFJS_DIRNAME
    raise FileNotFoundError(f"no TF.js model.json in {p} or {p / TFJS_DIRNAME}")


def read_tfjs_weights(d: str | Path) -> dict[str, np.ndarray]:
    """Read every tensor of a TF.js layers model: {name: ndarray (TF layout)}."""
    d = Path(d)
    model = json.loads((d / "model.json").read_text())
    out: dict[str, np.ndarray] = {}
    for group in model["weightsManifest"]:
        buf = b"".join((d / p).read_bytes() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            if w.get("dtype", "float32") != "float32" or "quantization" in w:
                raise ValueError(f"unsupported tensor encoding for {w['name']}")
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            arr = np.frombuffer(buf, dtype="<f4", count=n, offset=off).reshape(w["shape"])
            off += 4 * n
            out[w["name"]] = arr.copy()
        if off != len(buf):
            raise ValueError(f"shard size mismatch in {group['paths']}: used {off} of {len(buf)}")
    return out


def _bn(sd: dict, prefix: str, w: dict, name: str) -> None:
    sd[f"{prefix}.weight"] = w[f"{name}/gamma"]
    sd[f"{prefix}.bias"] = w[f"{name}/beta"]
    sd[f"{prefix}.running_mean"] = w[f"{name}/moving_mean"]
    sd[f"{prefix}.running_var"] = w[f"{name}/moving_variance"]


def tfjs_to_state_dict(w: dict[str, np.ndarray], num_blocks: int = 13) -> dict[str, torch.Tensor]:
    # strip an optional model-name prefix such as "mobilenet_1.00_224/"
    w = {k.split("/", 1)[1] if k.count("/") > 1 else k: v for k, v in w.items()}
    sd: dict[str, np.ndarray] = {}
    sd["conv1.weight"] = w["conv1/kernel"].transpose(3, 2, 0, 1)
    _bn(sd, "conv1_bn", w, "conv1_bn")
    for k in range(1, num_blocks + 1):
        b = f"blocks.{k - 1}"
        sd[f"{b}.dw.weight"] = w[f"conv_dw_{k}/depthwise_kernel"].transpose(2, 3, 0, 1)
        _bn(sd, f"{b}.dw_bn", w, f"conv_dw_{k}_bn")
        sd[f"{b}.pw.weight"] = w[f"conv_pw_{k}/kernel"].transpose(3, 2, 0, 1)
        _bn(sd, f"{b}.pw_bn", w, f"conv_pw_{k}_bn")
    sd["conv_preds.weight"] = w["conv_preds/kernel"].transpose(3, 2, 0, 1)
    sd["conv_preds.bias"] = w["conv_preds/bias"]
    return {k: torch.from_numpy(np.ascontiguousarray(v)).float() for k, v in sd.items()}


def load_tfjs_into_torch(net, d: str | Path) -> None:
    sd = tfjs_to_state_dict(read_tfjs_weights(d), num_blocks=len(net.blocks))
    own = net.state_dict()
    for k in list(own):
        if k.endswith("num_batches_tracked"):
            sd[k] = own[k]
    missing = set(own) - set(sd)
    extra = set(sd) - set(own)
    if missing or extra:
        raise KeyError(f"state dict mismatch: missing={sorted(missing)} extra={sorted(extra)}")
    for k, v in sd.items():
        if tuple(own[k].shape) != tuple(v.shape):
            raise ValueError(f"shape mismatch {k}: {tuple(v.shape)} vs {tuple(own[k].shape)}")
    net.load_state_dict(sd)


def labels(d: str | Path) -> list[str]:
    return json.loads((Path(d) / "metadata.json").read_text())["labels"]


@torch.no_grad()
def top5(net, pixels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    net.eval()
    p = torch.softmax(net(pixels), dim=-1)
    v, i = p.topk(5, dim=-1)
    return i.numpy(), v.numpy()


def main(argv=None) -> int:
    from .data import decode_image, image_to_array, load_flickr8k_dir, preprocess_spec
    from .model import MobileNetV1

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pretrained-dir", required=True, help="../shared/pretrained (or the tfjs folder)")
    ap.add_argument("--out", default="", help="where to save the PyTorch state dict (.pt)")
    ap.add_argument("--verify-flickr8k", default="", help="Flickr8K dir: print top-5 for a few images")
    ap.add_argument("--images", nargs="*", default=[], help="extra image files to classify")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)

    d = tfjs_dir(args.pretrained_dir)
    net = MobileNetV1(0.75)
    load_tfjs_into_torch(net, d)
    net.eval()
    print(f"converted {sum(p.numel() for p in net.parameters()):,} parameters from {d}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), args.out)
        print(f"saved {args.out}")
    spec = preprocess_spec("mobilenet_v1_075")
    names = labels(d)
    items: list[tuple[str, bytes]] = []
    if args.verify_flickr8k:
        ds = load_flickr8k_dir(args.verify_flickr8k)
        items += [(f"{tag} ({iid})", ds.read_image(iid)) for tag, iid in VERIFY_IMAGES.items()]
    items += [(p, Path(p).read_bytes()) for p in args.images]
    for tag, data in items:
        x = torch.from_numpy(image_to_array(decode_image(data), spec)).unsqueeze(0)
        idx, prob = top5(net, x)
        print(f"{tag}:")
        for i, p in zip(idx[0], prob[0]):
            print(f"   {p:6.3f}  [{i:4d}] {names[i]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
