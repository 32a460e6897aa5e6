/**
 * The scale curve (`npm run bench:scale`): exact vs HNSW top-10 image search over galleries of
 * 8k, 100k and 1M items, one query at a time on one thread.
 *
 *   npx tsx --conditions=source bench/scale.bench.ts [--sizes 8091,100000,1000000] [--queries 300] [--ef 64,128,256]
 *                                [--store-dir .data/store] [--model m-…] [--dataset flickr8k]
 *                                [--memory-limit-mib 2048] [--build-threads 2] [--connectivity 16] [--expansion-add 128]
 *
 * Vectors: the shipped model's real image embeddings (the stored flickr8k index), then seeded
 * synthetic vectors for the rest, drawn from a Gaussian with the real embeddings' mean and
 * covariance and L2-normalised like them (so they spread over the same directions, not
 * copies of real items). Queries: real caption embeddings. Without a stored index (a fresh
 * clone), the demo index's embeddings are the real part.
 *
 * For each size: exact (usearch's SIMD scan, Ranking's default) p50/p99; HNSW (usearch; M=16,
 * ef_construction=128 as Ranking builds it, or --connectivity/--expansion-add) build time, then p50/p99 and recall@10 against
 * exact at each ef_search; bytes per item in memory and on disk; and the largest gallery one
 * Ranking replica holds within the chart's memory limit. JSON in .artifacts/bench-scale.json.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { createObjectStore } from "@glimpse/objectstore";
import { readPublished } from "@glimpse/pipeline";
import usearch from "usearch";
import { DEFAULT_HNSW, rerankCandidates } from "../services/ranking/src/index/gallery.js";
import { loadIndex } from "../services/ranking/src/index/store.js";
import { toF32 } from "../services/ranking/src/index/topk.js";
import { readAlias } from "../services/ranking/src/registry.js";
import { percentile } from "./stats.js";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");
const { values: a } = parseArgs({
  options: {
    sizes: { type: "string", default: "8091,100000,1000000" },
    queries: { type: "string", default: "300" },
    ef: { type: "string", default: "64,128,256" },
    "store-dir": { type: "string", default: join(ROOT, ".data", "store") },
    bucket: { type: "string", default: "glimpse" },
    model: { type: "string" },
    dataset: { type: "string", default: "flickr8k" },
    /** The chart's Ranking memory limit (helm/glimpse/values.yaml ranking.resources.limits.memory). */
    "memory-limit-mib": { type: "string", default: "2048" },
    /**
     * A Ranking process's resident memory before its gallery: bench:ranking measured 637 MiB
     * serving Flickr8K (shipped model, both encoders, demo gallery), of which ~50 MiB are the
     * 48,546 image and caption rows.
     */
    "base-rss-mib": { type: "string", default: "590" },
    "build-threads": { type: "string", default: String(Math.min(2, cpus().length)) },
    connectivity: { type: "string", default: String(DEFAULT_HNSW.connectivity) },
    "expansion-add": { type: "string", default: String(DEFAULT_HNSW.expansionAdd) },
    seed: { type: "string", default: "20261206" },
    /** Where built graphs are kept between runs (git-ignored). */
    "graph-dir": { type: "string", default: join(ROOT, ".artifacts", "hnsw-graphs") },
  },
});

const log = (s: string) => process.stderr.write(`${s}\n`);
const M = Number(a.connectivity);
const EF_ADD = Number(a["expansion-add"]);
/** Candidates Ranking takes from the graph to re-rank with query-bank biases for k = 10. */
const CANDIDATES = rerankCandidates(10);

/** xorshift32, and standard normals by Box–Muller: the synthetic part is the same every run. */
function normals(seed: number): () => number {
  let x = seed >>> 0 || 1;
  const u = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return (x + 0.5) / 2 ** 32;
  };
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(u()));
    const t = 2 * Math.PI * u();
    spare = r * Math.sin(t);
    return r * Math.cos(t);
  };
}

/** Real embeddings: the stored index of --dataset under the production model, else the demo pack's. */
async function realEmbeddings(): Promise<{ images: Float32Array; captions: Float32Array; dim: number; source: string }> {
  const store = createObjectStore({ kind: "fs", root: resolve(a["store-dir"]), bucket: a.bucket });
  const version = a.model ?? (await readAlias(store).catch(() => undefined));
  const pub = await readPublished(store, a.dataset).catch(() => undefined);
  if (version && pub) {
    const idx = await loadIndex(store, version, a.dataset, pub.version);
    if (idx) return { images: idx.index.data.imageEmb, captions: idx.index.data.captionEmb, dim: idx.doc.dim, source: `${a.dataset} ${pub.version} under ${version}` };
  }
  const doc = JSON.parse(readFileSync(join(ROOT, "demo", "index", "index.json"), "utf8")) as { dim: number; model_version: string };
  return {
    images: toF32(readFileSync(join(ROOT, "demo", "index", "images.f32"))),
    captions: toF32(readFileSync(join(ROOT, "demo", "index", "captions.f32"))),
    dim: doc.dim,
    source: `the demo index (demo/index) under ${doc.model_version}`,
  };
}

/** Lower-triangular L with L·Lᵀ = the covariance of `rows` (plus a small ridge), and their mean. */
function gaussianFit(rows: Float32Array, d: number): { mean: Float64Array; chol: Float64Array } {
  const n = rows.length / d;
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j]! += rows[i * d + j]! / n;
  const cov = new Float64Array(d * d);
  const c = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) c[j] = rows[i * d + j]! - mean[j]!;
    for (let j = 0; j < d; j++) {
      const cj = c[j]!;
      for (let k = 0; k <= j; k++) cov[j * d + k]! += cj * c[k]!;
    }
  }
  for (let j = 0; j < d; j++) for (let k = 0; k <= j; k++) cov[j * d + k] = cov[j * d + k]! / (n - 1) + (j === k ? 1e-6 : 0);
  const L = new Float64Array(d * d);
  for (let j = 0; j < d; j++) {
    for (let k = 0; k <= j; k++) {
      let s = cov[j * d + k]!;
      for (let m = 0; m < k; m++) s -= L[j * d + m]! * L[k * d + m]!;
      L[j * d + k] = j === k ? Math.sqrt(Math.max(s, 1e-12)) : s / L[k * d + k]!;
    }
  }
  return { mean, chol: L };
}

/** `n` gallery vectors: the real ones first, then Gaussian draws matched to them, L2-normalised. */
function gallery(real: Float32Array, d: number, n: number, fit: ReturnType<typeof gaussianFit>, seed: number): Float32Array {
  const out = new Float32Array(n * d);
  const m = Math.min(n, real.length / d);
  out.set(real.subarray(0, m * d));
  const z = new Float64Array(d);
  const next = normals(seed);
  for (let i = m; i < n; i++) {
    for (let j = 0; j < d; j++) z[j] = next();
    let norm = 0;
    for (let j = 0; j < d; j++) {
      let v = fit.mean[j]!;
      for (let k = 0; k <= j; k++) v += fit.chol[j * d + k]! * z[k]!;
      out[i * d + j] = v;
      norm += v * v;
    }
    norm = Math.sqrt(norm) || 1;
    for (let j = 0; j < d; j++) out[i * d + j]! /= norm;
  }
  return out;
}

function timed<T>(fn: () => T): [T, number] {
  const s = performance.now();
  const r = fn();
  return [r, performance.now() - s];
}

const lat = (t: number[]) => {
  const s = [...t].sort((x, y) => x - y);
  return { p50: percentile(s, 50), p99: percentile(s, 99) };
};

interface HnswRow {
  ef: number;
  p50: number;
  p99: number;
  recall10: number;
  /** CANDIDATES from the graph re-scored exactly, top 10 kept. */
  reranked: { p50: number; p99: number; recall10: number };
}

interface SizeRow {
  images: number;
  exact: { p50: number; p99: number; queries: number };
  hnsw: { build_s: number; build_threads: number; runs: HnswRow[]; file_bytes: number };
  bytes_per_item: { exact_memory: number; hnsw_memory: number; disk_exact: number; disk_hnsw: number };
}

async function main(): Promise<void> {
  const real = await realEmbeddings();
  const d = real.dim;
  const nq = Number(a.queries);
  const ncap = real.captions.length / d;
  // Queries: real caption embeddings, spread over the whole caption set.
  const queries = Array.from({ length: nq }, (_, i) => {
    const r = (i * 104729) % ncap;
    return real.captions.slice(r * d, (r + 1) * d);
  });
  const fit = gaussianFit(real.images, d);
  const efs = a.ef.split(",").map(Number);
  const threads = Number(a["build-threads"]);
  log(`real vectors: ${real.images.length / d} images of ${real.source}; ${d}-d; ${nq} caption queries; load ${loadavg().map((x) => x.toFixed(1)).join(" ")}`);
  const rows: SizeRow[] = [];
  {
    for (const n of a.sizes.split(",").map(Number)) {
      const [base, tGen] = timed(() => gallery(real.images, d, n, fit, Number(a.seed)));
      log(`${n} images (${(tGen / 1000).toFixed(1)} s to draw the synthetic part)…`);
      // Exact: every query (fewer at a million, where one scan reads 1 GB), one thread.
      const exactQueries = n >= 500_000 ? Math.min(nq, 100) : nq;
      const truth: Set<number>[] = [];
      const tExact: number[] = [];
      for (let i = 0; i < exactQueries; i++) {
        const [m, t] = timed(() => usearch.exactSearch(base, queries[i]!, d, 10, usearch.MetricKind.IP, 1) as { keys: BigUint64Array });
        truth.push(new Set([...m.keys].map(Number)));
        tExact.push(t);
      }
      // The graph is cached across runs (--graph-dir): a million-item build takes ~20 min on 2 cores.
      const tag = `n${n}-m${M}-efc${EF_ADD}-seed${a.seed}-${createHash("sha256").update(new Uint8Array(real.images.buffer, 0, Math.min(real.images.byteLength, 1 << 20))).digest("hex").slice(0, 12)}`;
      const file = join(a["graph-dir"], `hnsw-${tag}.usearch`);
      const meta = `${file}.json`;
      let tBuild: number;
      if (existsSync(file) && existsSync(meta)) {
        tBuild = (JSON.parse(readFileSync(meta, "utf8")) as { build_ms: number }).build_ms;
        log(`  HNSW graph from ${file} (built earlier in ${(tBuild / 1000).toFixed(1)} s)`);
      } else {
        const idx = new usearch.Index({ dimensions: d, metric: usearch.MetricKind.IP, quantization: usearch.ScalarKind.F32, connectivity: M, expansion_add: EF_ADD, expansion_search: 64, multi: false });
        const keys = new BigUint64Array(n);
        for (let i = 0; i < n; i++) keys[i] = BigInt(i);
        [, tBuild] = timed(() => idx.add(keys, base, threads));
        mkdirSync(a["graph-dir"], { recursive: true });
        idx.save(file);
        writeFileSync(meta, JSON.stringify({ build_ms: tBuild, threads, load_average: loadavg() }));
      }
      const fileBytes = statSync(file).size;
      log(`  HNSW built in ${(tBuild / 1000).toFixed(1)} s (${threads} threads), ${(fileBytes / 2 ** 20).toFixed(0)} MiB`);
      const runs: HnswRow[] = [];
      const dot = (row: number, q: Float32Array) => {
        let x = 0;
        for (let j = 0; j < d; j++) x += base[row * d + j]! * q[j]!;
        return x;
      };
      for (const ef of efs) {
        // ef_search is a property of the loaded index: the same graph, viewed with another ef.
        const view = new usearch.Index({ dimensions: d, metric: usearch.MetricKind.IP, quantization: usearch.ScalarKind.F32, connectivity: M, expansion_add: EF_ADD, expansion_search: ef, multi: false });
        view.view(file);
        for (let i = 0; i < 20; i++) view.search(queries[i]!, 10, 1); // warm the pages
        const t: number[] = [];
        const tr: number[] = [];
        let hit = 0;
        let hitRe = 0;
        for (let i = 0; i < nq; i++) {
          const [m, ms] = timed(() => view.search(queries[i]!, 10, 1) as { keys: BigUint64Array });
          t.push(ms);
          // As Ranking searches a gallery with query-bank biases: CANDIDATES from the graph,
          // scored exactly, the best 10 kept (gallery.ts searchHnsw).
          const [top, msRe] = timed(() => {
            const c = view.search(queries[i]!, CANDIDATES, 1) as { keys: BigUint64Array };
            return [...c.keys].map(Number).map((row) => ({ row, s: dot(row, queries[i]!) })).sort((x, y) => y.s - x.s).slice(0, 10);
          });
          tr.push(msRe);
          if (i < exactQueries) {
            for (const k of m.keys) if (truth[i]!.has(Number(k))) hit++;
            for (const h of top) if (truth[i]!.has(h.row)) hitRe++;
          }
        }
        runs.push({ ef, ...lat(t), recall10: hit / (exactQueries * 10), reranked: { ...lat(tr), recall10: hitRe / (exactQueries * 10) } });
      }
      rows.push({
        images: n,
        exact: { ...lat(tExact), queries: exactQueries },
        hnsw: { build_s: tBuild / 1000, build_threads: threads, runs, file_bytes: fileBytes },
        bytes_per_item: {
          // Ranking keeps the embeddings plus the query-bank bias column (d + 1 floats) …
          exact_memory: (d + 1) * 4,
          // … and with HNSW also usearch's graph, which holds its own copy of the vectors.
          hnsw_memory: (d + 1) * 4 + fileBytes / n,
          disk_exact: d * 4,
          disk_hnsw: d * 4 + fileBytes / n,
        },
      });
    }
  }

  const limit = Number(a["memory-limit-mib"]) * 2 ** 20;
  const baseRss = Number(a["base-rss-mib"]) * 2 ** 20;
  const big = rows[rows.length - 1]!;
  // Flickr8K-like galleries carry five captions per image (searched by image→text); collections
  // without captions carry only the images.
  const capacity = (perImage: number) => Math.floor((limit - baseRss) / perImage);
  const fit1 = {
    exact_images_only: capacity(big.bytes_per_item.exact_memory),
    hnsw_images_only: capacity(big.bytes_per_item.hnsw_memory),
    exact_with_5_captions: capacity(big.bytes_per_item.exact_memory * 6),
    hnsw_with_5_captions: capacity(big.bytes_per_item.hnsw_memory + big.bytes_per_item.exact_memory * 5),
  };

  const f = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(2));
  console.log(`\n## Scale curve — top-10 image search, one query at a time on one thread (${real.source} + Gaussian-matched synthetic vectors; HNSW M=${M}, ef_construction=${EF_ADD})\n`);
  console.log(`| images | exact p50 ms | exact p99 ms | HNSW build s | ef_search | HNSW top-10 p50 ms | p99 ms | recall@10 | ${CANDIDATES} re-ranked p50 ms | p99 ms | recall@10 | bytes/item memory exact / HNSW | bytes/item disk exact / HNSW |`);
  console.log("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of rows) {
    r.hnsw.runs.forEach((h, i) =>
      console.log(
        `| ${i === 0 ? r.images.toLocaleString("en") : ""} | ${i === 0 ? f(r.exact.p50) : ""} | ${i === 0 ? f(r.exact.p99) : ""} | ${i === 0 ? r.hnsw.build_s.toFixed(1) : ""} | ${h.ef} | ${f(h.p50)} | ${f(h.p99)} | ${(h.recall10 * 100).toFixed(1)} % | ${f(h.reranked.p50)} | ${f(h.reranked.p99)} | ${(h.reranked.recall10 * 100).toFixed(1)} % | ${i === 0 ? `${r.bytes_per_item.exact_memory} / ${r.bytes_per_item.hnsw_memory.toFixed(0)}` : ""} | ${i === 0 ? `${r.bytes_per_item.disk_exact} / ${r.bytes_per_item.disk_hnsw.toFixed(0)}` : ""} |`,
      ),
    );
  }
  console.log(`\nOne Ranking replica within ${a["memory-limit-mib"]} MiB (less ${a["base-rss-mib"]} MiB for the process and model): ` +
    `images only ${fit1.exact_images_only.toLocaleString("en")} exact / ${fit1.hnsw_images_only.toLocaleString("en")} HNSW; ` +
    `with five captions per image ${fit1.exact_with_5_captions.toLocaleString("en")} exact / ${fit1.hnsw_with_5_captions.toLocaleString("en")} HNSW.`);
  mkdirSync(join(ROOT, ".artifacts"), { recursive: true });
  writeFileSync(join(ROOT, ".artifacts", `bench-scale-m${M}-efc${EF_ADD}.json`), `${JSON.stringify({ source: real.source, dim: d, connectivity: M, expansion_add: EF_ADD, queries: nq, rows, replica_capacity: fit1, memory_limit_mib: Number(a["memory-limit-mib"]), base_rss_mib: Number(a["base-rss-mib"]), load_average: loadavg(), at: new Date().toISOString() }, null, 2)}\n`);
}

await main();
