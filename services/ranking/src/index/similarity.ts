/**
 * Batched exact top-k on onnxruntime: `Gemm(queries, galleryᵀ) → TopK`. Scoring B queries in
 * one matrix product reads the gallery once instead of B times — the search is bound by
 * memory bandwidth (8091 × 256 floats = 8 MB; Flickr8K's 40455 captions are 41 MB), so for
 * concurrent requests this is several times cheaper per query than B separate scans.
 *
 * The graph is tiny and built here (a hand-written ONNX protobuf, no weights):
 *   inputs  query float[B,D], gallery float[N,D], k int64[1]
 *   nodes   Gemm(query, gallery, transB=1) → scores;  TopK(scores, k, axis=-1, largest, sorted)
 *   outputs values float[B,K], indices int64[B,K]
 */
import * as ort from "onnxruntime-node";
import type { Hit } from "./topk.js";

// ---- a minimal protobuf writer for the few ONNX messages needed ----------------------------
type Bytes = number[];
const varint = (v: number | bigint): Bytes => {
  let x = BigInt.asUintN(64, BigInt(v));
  const out: Bytes = [];
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x > 0n) b |= 0x80;
    out.push(b);
  } while (x > 0n);
  return out;
};
const key = (field: number, wire: number): Bytes => varint((field << 3) | wire);
const int = (field: number, v: number | bigint): Bytes => [...key(field, 0), ...varint(v)];
const bytes = (field: number, b: Bytes): Bytes => [...key(field, 2), ...varint(b.length), ...b];
const str = (field: number, s: string): Bytes => bytes(field, [...Buffer.from(s, "utf8")]);

const FLOAT = 1;
const INT64 = 7;
const ATTR_INT = 2;
const ATTR_INTS = 7;

/** ValueInfoProto{name, type: TypeProto{tensor_type{elem_type, shape{dim{dim_param}}}}}. */
function valueInfo(name: string, elem: number, dims: string[]): Bytes {
  const shape = dims.flatMap((d) => bytes(1, /^\d+$/.test(d) ? int(1, Number(d)) : str(2, d)));
  return [...str(1, name), ...bytes(2, bytes(1, [...int(1, elem), ...bytes(2, shape)]))];
}

/** NodeProto with int / ints attributes. */
function node(op: string, inputs: string[], outputs: string[], attrs: Record<string, number | number[]>): Bytes {
  return [
    ...inputs.flatMap((i) => str(1, i)),
    ...outputs.flatMap((o) => str(2, o)),
    ...str(3, op.toLowerCase()),
    ...str(4, op),
    ...Object.entries(attrs).flatMap(([n, v]) =>
      bytes(5, Array.isArray(v) ? [...str(1, n), ...v.flatMap((x) => int(8, x)), ...int(20, ATTR_INTS)] : [...str(1, n), ...int(3, v), ...int(20, ATTR_INT)]),
    ),
  ];
}

function modelOf(graph: Bytes): Uint8Array {
  return Uint8Array.from([...int(1, 8), ...str(2, "glimpse"), ...bytes(7, graph), ...bytes(8, [...str(1, ""), ...int(2, 17)])]);
}

/** The ModelProto bytes of the similarity graph (ONNX IR 8, opset 17). */
function similarityModel(): Uint8Array {
  const graph = [
    ...bytes(1, node("Gemm", ["query", "gallery"], ["scores"], { transB: 1 })),
    ...bytes(1, node("TopK", ["scores", "k"], ["values", "indices"], { axis: -1, largest: 1, sorted: 1 })),
    ...str(2, "similarity"),
    ...bytes(11, valueInfo("query", FLOAT, ["B", "D"])),
    ...bytes(11, valueInfo("gallery", FLOAT, ["N", "D"])),
    ...bytes(11, valueInfo("k", INT64, ["1"])),
    ...bytes(12, valueInfo("values", FLOAT, ["B", "K"])),
    ...bytes(12, valueInfo("indices", INT64, ["B", "K"])),
  ];
  return modelOf(graph);
}

/**
 * The ModelProto bytes of the row log-sum-exp graph (query-bank biases):
 *   inputs  items float[N,D], bank float[M,D]
 *   nodes   Gemm(items, bank, transB=1) → scores;  ReduceLogSumExp(scores, axes=[1], keepdims=0)
 *   output  lse float[N]
 */
function logSumExpModel(): Uint8Array {
  return modelOf([
    ...bytes(1, node("Gemm", ["items", "bank"], ["scores"], { transB: 1 })),
    ...bytes(1, node("ReduceLogSumExp", ["scores"], ["lse"], { axes: [1], keepdims: 0 })),
    ...str(2, "row_logsumexp"),
    ...bytes(11, valueInfo("items", FLOAT, ["N", "D"])),
    ...bytes(11, valueInfo("bank", FLOAT, ["M", "D"])),
    ...bytes(12, valueInfo("lse", FLOAT, ["N"])),
  ]);
}

// ---- the session ------------------------------------------------------------------------------
let session: Promise<ort.InferenceSession> | undefined;
let threads = 0;
let maxBatch = 64;

/**
 * Intra-op threads of the similarity session (set before the first search; 0 = one per core)
 * and the most searches gathered into one run (1 = every search scans alone; indexes built
 * afterwards use it).
 */
export function configureSimilarity(intraOpThreads: number, batch = 64): void {
  threads = intraOpThreads;
  maxBatch = Math.max(1, batch);
}

export function searchBatchMax(): number {
  return maxBatch;
}

/** A CPU session for one of the graphs built here, with the configured intra-op threads. */
function cpuSession(model: Uint8Array): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(model, {
    executionProviders: ["cpu"],
    interOpNumThreads: 1,
    ...(threads > 0 ? { intraOpNumThreads: threads } : {}),
    extra: { session: { intra_op: { allow_spinning: "0" } } },
  });
}

function getSession(): Promise<ort.InferenceSession> {
  session ??= cpuSession(similarityModel());
  return session;
}

const galleries = new WeakMap<Float32Array, ort.Tensor>();

/** Exact top-k of every query (rows of `queries`, [B × dim]) against `matrix` ([N × dim]). */
export async function batchTopK(matrix: Float32Array, dim: number, queries: Float32Array, k: number): Promise<Hit[][]> {
  const n = matrix.length / dim;
  const b = queries.length / dim;
  k = Math.min(k, n);
  if (k <= 0 || b === 0) return Array.from({ length: b }, () => []);
  let g = galleries.get(matrix);
  if (!g) galleries.set(matrix, (g = new ort.Tensor("float32", matrix, [n, dim])));
  const s = await getSession();
  const out = await s.run({ query: new ort.Tensor("float32", queries, [b, dim]), gallery: g, k: new ort.Tensor("int64", BigInt64Array.of(BigInt(k)), [1]) });
  const values = out["values"]!.data as Float32Array;
  const indices = out["indices"]!.data as BigInt64Array;
  const hits: Hit[][] = [];
  for (let i = 0; i < b; i++) {
    const row: Hit[] = [];
    for (let j = 0; j < k; j++) row.push({ row: Number(indices[i * k + j]), score: values[i * k + j]! });
    hits.push(row);
  }
  return hits;
}

let lseSession: Promise<ort.InferenceSession> | undefined;

/** log Σ_m exp(items_n · bank_m) for every row n of `items` ([N × dim]), in chunks of rows. */
export async function rowLogSumExp(items: Float32Array, bank: Float32Array, dim: number, chunk = 1024): Promise<Float32Array> {
  lseSession ??= cpuSession(logSumExpModel());
  const s = await lseSession;
  const n = items.length / dim;
  const out = new Float32Array(n);
  const b = new ort.Tensor("float32", bank, [bank.length / dim, dim]);
  for (let from = 0; from < n; from += chunk) {
    const rows = Math.min(chunk, n - from);
    const r = await s.run({ items: new ort.Tensor("float32", items.slice(from * dim, (from + rows) * dim), [rows, dim]), bank: b });
    out.set(r["lse"]!.data as Float32Array, from);
  }
  return out;
}
