"""The seed's serving architecture, as a peer for `npm run bench:ranking`.

    GLIMPSE_PEER_MODEL_DIR=<model files> GLIMPSE_PEER_INDEX_DIR=<index files> \
      .tools/peer-venv/bin/uvicorn server:app --app-dir bench/peers/fastapi-onnx --workers 2 --port 8099

One FastAPI app on uvicorn, onnxruntime for the encoders and numpy for the scan: what a user
who rewrote the seed's Python server in an afternoon would run. It serves the same model
export (text_encoder.onnx, image_encoder.onnx, vocab.json, the query bank) and the same stored
index files (images.f32, captions.f32, index.json) as Glimpse, and answers the same REST paths
with the same JSON (proto field names), so one HTTP client drives both:

    POST /inference/text-to-image   {"query": "...", "top_k": 10}
    POST /inference/upload-image    image bytes (Content-Type: image/*), ?top_k_captions=5

Tuned as its users would tune it (bench/peers/README.md): one uvicorn worker per core, one
onnxruntime and BLAS thread per worker (OMP/OPENBLAS_NUM_THREADS=1, set by the benchmark),
rankings by cosine + query-bank bias as Glimpse ranks them.
"""

import io
import json
import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, HTTPException, Request
from PIL import Image
from pydantic import BaseModel
from tokenizers import Tokenizer

MODEL_DIR = os.environ["GLIMPSE_PEER_MODEL_DIR"]
INDEX_DIR = os.environ["GLIMPSE_PEER_INDEX_DIR"]
THREADS = int(os.environ.get("GLIMPSE_PEER_THREADS", "1"))
SPLITS = {0: "SPLIT_UNSPECIFIED", 1: "SPLIT_TRAIN", 2: "SPLIT_DEV", 3: "SPLIT_TEST"}


def _session(name: str) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(os.path.join(MODEL_DIR, name), so, providers=["CPUExecutionProvider"])


def _f32(path: str, dim: int) -> np.ndarray:
    return np.fromfile(path, dtype="<f4").reshape(-1, dim)


def _bias(bank: np.ndarray, items: np.ndarray, beta: float) -> np.ndarray:
    """QB-Norm: bias(item) = -(1/beta) * logsumexp_b(beta * bank_b . item)."""
    out = np.empty(len(items), dtype=np.float32)
    for s in range(0, len(items), 4096):
        z = beta * (items[s : s + 4096] @ bank.T)
        m = z.max(axis=1, keepdims=True)
        out[s : s + 4096] = -(m[:, 0] + np.log(np.exp(z - m).sum(axis=1))) / beta
    return out


vocab = json.load(open(os.path.join(MODEL_DIR, "vocab.json")))
tokenizer = Tokenizer.from_str(json.dumps(vocab["tokenizer"]))
pad_id = vocab["pad_id"]
preprocess = json.load(open(os.path.join(MODEL_DIR, "preprocess.json")))
text_session = _session("text_encoder.onnx")
image_session = _session("image_encoder.onnx")
doc = json.load(open(os.path.join(INDEX_DIR, "index.json")))
dim = doc["dim"]
image_emb = _f32(os.path.join(INDEX_DIR, "images.f32"), dim)
caption_emb = _f32(os.path.join(INDEX_DIR, "captions.f32"), dim)
image_ids = doc["images"]["ids"]
image_splits = doc["images"]["splits"]
image_captions = doc["images"]["captions"]
caption_refs = [(i, n) for i, caps in enumerate(image_captions) for n in range(len(caps))]
image_bias = np.zeros(len(image_emb), dtype=np.float32)
caption_bias = np.zeros(len(caption_emb), dtype=np.float32)
qb_path = os.path.join(MODEL_DIR, "querybank.json")
if os.path.exists(qb_path):
    qb = json.load(open(qb_path))
    image_bias = _bias(_f32(os.path.join(MODEL_DIR, qb["files"]["captions"]), dim), image_emb, qb["beta"])
    caption_bias = _bias(_f32(os.path.join(MODEL_DIR, qb["files"]["images"]), dim), caption_emb, qb["beta"])
mean = np.array(preprocess["mean"], dtype=np.float32).reshape(3, 1, 1)
std = np.array(preprocess["std"], dtype=np.float32).reshape(3, 1, 1)

app = FastAPI()


def top_k(matrix: np.ndarray, bias: np.ndarray, q: np.ndarray, k: int):
    """Rows of the k best cosine + bias, best first, with their cosines."""
    cos = matrix @ q
    ranked = cos + bias
    k = min(k, len(ranked))
    rows = np.argpartition(-ranked, k - 1)[:k]
    rows = rows[np.lexsort((rows, -ranked[rows]))]
    return rows, cos[rows]


def image_url(image_id: str) -> str:
    return f"/data/images/{doc['dataset']}/{doc['dataset_version']}/{image_id}"


class TextQuery(BaseModel):
    query: str
    top_k: int = 10


@app.post("/inference/text-to-image")
def text_to_image(body: TextQuery):
    if not body.query.strip() or not 1 <= body.top_k <= 100:
        raise HTTPException(400, "query must be non-empty and top_k in 1..100")
    ids = tokenizer.encode(body.query).ids
    feeds = {"token_ids": np.array([ids], dtype=np.int64), "lengths": np.array([len(ids)], dtype=np.int64)}
    q = text_session.run(["embedding"], feeds)[0][0]
    rows, scores = top_k(image_emb, image_bias, q, body.top_k)
    results = [
        {
            "image_id": image_ids[r],
            "score": float(s),
            "rank": i + 1,
            "split": SPLITS[image_splits[r]],
            "captions": image_captions[r],
            "image_url": image_url(image_ids[r]),
        }
        for i, (r, s) in enumerate(zip(rows.tolist(), scores.tolist()))
    ]
    return {"results": results, "model_version": doc["model_version"], "dataset_version": doc["dataset_version"]}


@app.post("/inference/upload-image")
async def upload_image(request: Request, top_k_captions: int = 5):
    try:
        img = Image.open(io.BytesIO(await request.body())).convert("RGB")
    except Exception as err:  # noqa: BLE001 - any decoding failure is the client's bad image
        raise HTTPException(400, f"not an image: {err}") from err
    width, height = img.size
    if img.size != (preprocess["width"], preprocess["height"]):
        img = img.resize((preprocess["width"], preprocess["height"]), Image.BILINEAR)
    x = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) * np.float32(preprocess["scale"])
    pixels = ((x - mean) / std)[None]
    q = image_session.run(["embedding"], {preprocess["input_name"]: pixels})[0][0]
    rows, scores = top_k(caption_emb, caption_bias, q, top_k_captions)
    captions = []
    for i, (r, s) in enumerate(zip(rows.tolist(), scores.tolist())):
        image, n = caption_refs[r]
        captions.append(
            {
                "caption_id": f"{image_ids[image]}#{n}",
                "image_id": image_ids[image],
                "text": image_captions[image][n],
                "score": float(s),
                "rank": i + 1,
            }
        )
    return {
        "captions": captions,
        "model_version": doc["model_version"],
        "dataset_version": doc["dataset_version"],
        "width": width,
        "height": height,
    }
