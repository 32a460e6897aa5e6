/**
 * Top-k by inner product over a row-major float32 matrix. The default is usearch's exact
 * (brute-force, SIMD) search; `dotTopK` is the plain TypeScript loop it replaced (kept as
 * the reference the tests compare against, and as a fallback).
 */
import usearch, { type Matches } from "usearch";

export interface Hit {
  /** Row in the matrix searched. */
  row: number;
  score: number;
}

/** Exact top-k of `query · rows` with a tight float32 loop and an insertion-sorted heap. */
export function dotTopK(matrix: Float32Array, dim: number, query: Float32Array, k: number): Hit[] {
  const n = matrix.length / dim;
  k = Math.min(k, n);
  const best = new Float32Array(k).fill(-Infinity);
  const rows = new Int32Array(k).fill(-1);
  for (let r = 0; r < n; r++) {
    const s = dot(matrix, r * dim, query, dim);
    if (s <= best[k - 1]!) continue;
    let j = k - 1;
    while (j > 0 && best[j - 1]! < s) {
      best[j] = best[j - 1]!;
      rows[j] = rows[j - 1]!;
      j--;
    }
    best[j] = s;
    rows[j] = r;
  }
  const out: Hit[] = [];
  for (let i = 0; i < k; i++) out.push({ row: rows[i]!, score: best[i]! });
  return out;
}

export function dot(m: Float32Array, off: number, q: Float32Array, dim: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let d = 0;
  for (; d + 3 < dim; d += 4) {
    s0 += m[off + d]! * q[d]!;
    s1 += m[off + d + 1]! * q[d + 1]!;
    s2 += m[off + d + 2]! * q[d + 2]!;
    s3 += m[off + d + 3]! * q[d + 3]!;
  }
  for (; d < dim; d++) s0 += m[off + d]! * q[d]!;
  return s0 + s1 + s2 + s3;
}

/**
 * Exact top-k with usearch's SIMD kernels. Scores are recomputed for the k hits with `dot`
 * (usearch reports 1 − ip in float32, which loses digits near 1), and ties are broken by
 * row so results are deterministic.
 */
export function exactTopK(matrix: Float32Array, dim: number, query: Float32Array, k: number): Hit[] {
  const n = matrix.length / dim;
  k = Math.min(k, n);
  if (k <= 0) return [];
  if (n < 64 || !standalone(matrix)) return dotTopK(matrix, dim, query, k);
  const m = usearch.exactSearch(matrix, standaloneCopy(query), dim, k, usearch.MetricKind.IP, 1) as Matches;
  const out: Hit[] = [];
  for (let i = 0; i < m.keys.length; i++) {
    const row = Number(m.keys[i]);
    if (row < 0 || row >= n) continue;
    out.push({ row, score: dot(matrix, row * dim, query, dim) });
  }
  out.sort((a, b) => b.score - a.score || a.row - b.row);
  return out;
}

/**
 * usearch's native code reads a typed array from the start of its ArrayBuffer, ignoring a
 * view's offset: a row view (subarray) must be copied before it is passed in.
 */
function standalone(a: Float32Array): boolean {
  return a.byteOffset === 0 && a.byteLength === a.buffer.byteLength;
}

export function standaloneCopy(a: Float32Array): Float32Array {
  return standalone(a) ? a : a.slice();
}

/** Float32 values of little-endian bytes, copied into an aligned buffer (a Buffer slice may start at any byte offset). */
export function toF32(b: Uint8Array): Float32Array {
  const out = new Float32Array(b.byteLength / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}
