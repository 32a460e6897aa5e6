#!/usr/bin/env -S npx tsx
/**
 * Exact vs HNSW top-k, measured: query latency (one thread, medians), HNSW build time and
 * recall@10 against the exact answer, for growing gallery sizes.
 *
 *   npx tsx services/ranking/src/tools/index-bench.ts [--sizes 8091,50000,200000] [--queries 300]
 *                                                     [--store-dir .data/store --model m-… --dataset flickr8k]
 *
 * With a stored index (--model/--dataset, default: the production model over flickr8k) the
 * vectors are the real image embeddings, grown to larger sizes by jittering real vectors
 * (keeps the data's cluster structure); queries are real caption embeddings. Without one,
 * clustered synthetic vectors.
 */
import { resolve } from "node:path";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { createObjectStore } from "@glimpse/objectstore";
import { readPublished } from "@glimpse/pipeline";
import usearch from "usearch";
import { dotTopK, exactTopK } from "../index/topk.js";
import { loadIndex } from "../index/store.js";
import { readAlias } from "../registry.js";

const { values: a } = parseArgs({
  options: {
    sizes: { type: "string", default: "8091,50000,200000" },
    queries: { type: "string", default: "300" },
    "store-dir": { type: "string", default: ".data/store" },
    bucket: { type: "string", default: "glimpse" },
    model: { type: "string" },
    dataset: { type: "string", default: "flickr8k" },
  },
});

const D = 256;
let seed = 12345;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;

function normalise(v: Float32Array, off: number): void {
  let n = 0;
  for (let d = 0; d < D; d++) n += v[off + d]! ** 2;
  n = Math.sqrt(n) || 1;
  for (let d = 0; d < D; d++) v[off + d]! /= n;
}

async function realVectors(): Promise<{ base: Float32Array; queries: Float32Array } | undefined> {
  const store = createObjectStore({ kind: "fs", root: resolve(a["store-dir"]), bucket: a.bucket });
  const version = a.model ?? (await readAlias(store).catch(() => undefined));
  const pub = await readPublished(store, a.dataset).catch(() => undefined);
  if (!version || !pub) return undefined;
  const idx = await loadIndex(store, version, a.dataset, pub.version).catch(() => undefined);
  return idx ? { base: idx.index.data.imageEmb, queries: idx.index.data.captionEmb } : undefined;
}

function grow(base: Float32Array, n: number, jitter: number): Float32Array {
  const m = base.length / D;
  const out = new Float32Array(n * D);
  out.set(base.subarray(0, Math.min(m, n) * D));
  for (let i = m; i < n; i++) {
    const src = (i * 7919) % m;
    for (let d = 0; d < D; d++) out[i * D + d] = base[src * D + d]! + jitter * rnd();
    normalise(out, i * D);
  }
  return out;
}

function synthetic(n: number): Float32Array {
  const centres = new Float32Array(256 * D).map(() => rnd());
  const out = new Float32Array(n * D);
  for (let i = 0; i < n; i++) {
    const c = i % 256;
    for (let d = 0; d < D; d++) out[i * D + d] = centres[c * D + d]! + 0.6 * rnd();
    normalise(out, i * D);
  }
  return out;
}

const median = (t: number[]) => t.sort((x, y) => x - y)[Math.floor(t.length / 2)]!;

async function main(): Promise<void> {
  const real = await realVectors();
  const nq = Number(a.queries);
  let queries: Float32Array;
  if (real) {
    queries = new Float32Array(nq * D);
    const m = real.queries.length / D;
    for (let i = 0; i < nq; i++) queries.set(real.queries.subarray(((i * 104729) % m) * D, (((i * 104729) % m) + 1) * D), i * D);
  } else queries = synthetic(nq);
  console.log(`vectors: ${real ? "real image embeddings (grown by jitter)" : "synthetic clusters"}, ${D}-d, ${nq} queries, k=10, load ${loadavg().map((x) => x.toFixed(1)).join(" ")}`);
  console.log("| images | exact TS loop ms | exact usearch ms | HNSW build s | HNSW ms | HNSW recall@10 |");
  console.log("|---:|---:|---:|---:|---:|---:|");
  for (const n of a.sizes.split(",").map(Number)) {
    const base = real ? grow(real.base, n, 0.05) : synthetic(n);
    const q = (i: number) => queries.subarray(i * D, (i + 1) * D);
    const tLoop: number[] = [];
    for (let i = 0; i < 10; i++) dotTopK(base, D, q(i), 10); // JIT warm-up
    for (let i = 0; i < Math.min(nq, 60); i++) {
      const s = performance.now();
      dotTopK(base, D, q(i), 10);
      tLoop.push(performance.now() - s);
    }
    const tExact: number[] = [];
    const truth: number[][] = [];
    for (let i = 0; i < nq; i++) {
      const s = performance.now();
      truth.push(exactTopK(base, D, q(i), 10).map((h) => h.row));
      tExact.push(performance.now() - s);
    }
    const idx = new usearch.Index({ dimensions: D, metric: usearch.MetricKind.IP, quantization: usearch.ScalarKind.F32, connectivity: 16, expansion_add: 128, expansion_search: 64, multi: false });
    const keys = new BigUint64Array(n);
    for (let i = 0; i < n; i++) keys[i] = BigInt(i);
    const b0 = performance.now();
    idx.add(keys, base, 2);
    const build = (performance.now() - b0) / 1000;
    const tH: number[] = [];
    let hit = 0;
    for (let i = 0; i < nq; i++) {
      const s = performance.now();
      const m = idx.search(q(i), 10, 1);
      tH.push(performance.now() - s);
      const got = new Set([...m.keys].map(Number));
      hit += truth[i]!.filter((r) => got.has(r)).length;
    }
    console.log(`| ${n} | ${median(tLoop).toFixed(3)} | ${median(tExact).toFixed(3)} | ${build.toFixed(1)} | ${median(tH).toFixed(3)} | ${((hit / (nq * 10)) * 100).toFixed(1)}% |`);
  }
}

await main();

