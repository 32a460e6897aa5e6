/**
 * Near duplicates of a collection, found once when its index is assembled and stored in the
 * index document: for each photo its nearest other photo by image cosine; the pairs at or above
 * NEAR_DUPLICATE_COSINE are joined into groups (photos linked by such pairs).
 *
 * Up to EXACT_MAX_PHOTOS the nearest neighbours are exact: Gemm+TopK over blocks of photos
 * (n²·d multiply-adds, a few seconds at 20k on two cores). Above, they come from an HNSW graph
 * (usearch): close to n·log n, approximate — a near pair the graph misses is not reported —
 * and the document says which method found them.
 */
import type { BatchMatches } from "usearch";
import { hnswGraphOf } from "../index/gallery.js";
import { batchTopK } from "../index/similarity.js";
import { dot } from "../index/topk.js";

/** Two photos whose image embeddings' cosine is at least this are near duplicates. */
export const NEAR_DUPLICATE_COSINE = 0.95;
/** Largest collection whose nearest neighbours are computed exactly. */
export const EXACT_MAX_PHOTOS = 20_000;
/** Photos per Gemm+TopK run of the exact search (a block's score matrix is BLOCK × n floats). */
const BLOCK = 256;

export interface NearDuplicateGroup {
  /** The photo the others are nearest to first, then the others by id. */
  photo_ids: string[];
  /** The lowest cosine between the first photo and another of the group. */
  score: number;
}

export interface NearDuplicates {
  threshold: number;
  method: "exact" | "hnsw";
  /** Photos in some group. */
  photos: number;
  groups: NearDuplicateGroup[];
}

/** Each row's nearest other row and their cosine (-1 and -Infinity for a row alone); exact up to `exactMax` rows. */
export async function nearestOthers(emb: Float32Array, dim: number, exactMax = EXACT_MAX_PHOTOS): Promise<{ row: Int32Array; score: Float64Array; method: NearDuplicates["method"] }> {
  const n = emb.length / dim;
  const row = new Int32Array(n).fill(-1);
  const score = new Float64Array(n).fill(-Infinity);
  const method = n > exactMax ? "hnsw" : "exact";
  // two neighbours each: itself (usually first) and the nearest other
  const take = (i: number, candidates: Iterable<number>) => {
    for (const j of candidates) {
      if (j === i || j < 0 || j >= n) continue;
      row[i] = j;
      // exact, double-precision score, whichever search found the pair
      score[i] = dot(emb, j * dim, emb.subarray(i * dim, (i + 1) * dim), dim);
      return;
    }
  };
  if (n < 2) return { row, score, method };
  if (method === "exact") {
    for (let from = 0; from < n; from += BLOCK) {
      const hits = await batchTopK(emb, dim, emb.slice(from * dim, Math.min(from + BLOCK, n) * dim), 2);
      hits.forEach((h, b) => take(from + b, h.map((x) => x.row)));
    }
  } else {
    const k = 3;
    const m = hnswGraphOf(emb, dim).search(emb, k, 0) as BatchMatches;
    for (let i = 0; i < n; i++) {
      const found = Number(m.counts[i]);
      take(i, Array.from({ length: found }, (_, j) => Number(m.keys[i * k + j])));
    }
  }
  return { row, score, method };
}

/** The near-duplicate groups of the rows of `emb` (ids in row order). */
export async function nearDuplicates(ids: string[], emb: Float32Array, dim: number, opts: { threshold?: number; exactMax?: number } = {}): Promise<NearDuplicates> {
  const n = ids.length;
  const threshold = opts.threshold ?? NEAR_DUPLICATE_COSINE;
  const { row, score, method } = await nearestOthers(emb, dim, opts.exactMax);
  // union-find over the pairs at or above the threshold
  const parent = Int32Array.from({ length: n }, (_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) i = parent[i] = parent[parent[i]!]!;
    return i;
  };
  const pointedAt = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    if (!(score[i]! >= threshold)) continue;
    pointedAt[row[i]!]!++;
    parent[find(i)] = find(row[i]!);
  }
  const members = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    if (!(score[i]! >= threshold) && pointedAt[i] === 0) continue;
    const r = find(i);
    const g = members.get(r);
    if (g) g.push(i);
    else members.set(r, [i]);
  }
  const groups: NearDuplicateGroup[] = [];
  for (const rows of members.values()) {
    // first: the photo most others are nearest to (then the smallest id)
    const first = rows.reduce((a, b) => (pointedAt[b]! > pointedAt[a]! || (pointedAt[b] === pointedAt[a] && ids[b]! < ids[a]!) ? b : a));
    const q = emb.subarray(first * dim, (first + 1) * dim);
    const others = rows.filter((r) => r !== first).sort((a, b) => (ids[a]! < ids[b]! ? -1 : 1));
    const lowest = Math.min(...others.map((r) => dot(emb, r * dim, q, dim)));
    groups.push({ photo_ids: [ids[first]!, ...others.map((r) => ids[r]!)], score: lowest });
  }
  groups.sort((a, b) => (a.photo_ids[0]! < b.photo_ids[0]! ? -1 : 1));
  return { threshold, method, photos: groups.reduce((s, g) => s + g.photo_ids.length, 0), groups };
}
