/**
 * The scale curve (`npm run bench:scale`): exact vs HNSW top-10 image search over galleries of
 * 8k, 100k and 1M items, one query at a time on one thread.
 *
 *   npx tsx --conditions=source bench/scale.bench.ts [--sizes 8091,100000,1000000] [--queries 300] [--ef 128,224,320] [--rerank 72[,all]]
 *                                [--quantization i8[,f16,f32]] [--connectivity 48[,32]] [--expansion-add 128[,256]]
 *                                [--store-dir .data/store] [--model m-…] [--dataset flickr8k]
 *                                [--memory-limit-mib 2048] [--build-threads 2] [--exact-queries 300]
 *
 * Vectors: the shipped model's real image embeddings (the stored flickr8k index), then seeded
 * synthetic vectors for the rest, drawn from a Gaussian with the real embeddings' mean and
 * covariance and L2-normalised like them (so they spread over the same directions, not
 * copies of real items). Queries: real caption embeddings. Without a stored index (a fresh
 * clone), the demo index's embeddings are the real part.
 *
 * For each size: exact (usearch's SIMD scan, Ranking's default) p50/p99 and the exact top 10 of
 * every query (the truth recall is measured against); then for each graph configuration — every
 * combination of --quantization (the scalar type usearch keeps the graph's vectors in),
 * --connectivity (M) and --expansion-add (ef_construction); the defaults are what Ranking builds,
 * DEFAULT_HNSW — its build time and bytes, and at each ef_search: the graph's own top 10, and
 * the first --rerank of its candidates ("all": ef_search of them) re-scored exactly with the
 * float32 rows, the best 10 kept, as Ranking searches (gallery.ts searchHnsw, 4k + 32 = 72
 * candidates). Latency p50/p99 is wall time; the CPU time's p50 beside it is what a query cost
 * when others load the machine (the load average is recorded with each build and measurement).
 * The graph is loaded into memory as Ranking loads it, and searched with ef_search =
 * max(expansion_search, wanted) as usearch does, so one loaded graph serves every ef_search.
 * Bytes per image in memory: the graph (usearch keeps its own copy of the vectors, in its scalar
 * type, beside the links; its file, and the resident memory loading it added) plus Ranking's
 * float32 rows with the query-bank bias column; and the largest gallery one Ranking replica
 * holds within the chart's memory limit. Built graphs and drawn galleries are cached in
 * --graph-dir (a million-image graph takes ~50 min on 2 busy cores). JSON in
 * .artifacts/bench-scale-<configurations>.json.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { createObjectStore } from "@glimpse/objectstore";
import { readPublished } from "@glimpse/pipeline";
import usearch from "usearch";
import { DEFAULT_HNSW, HNSW_QUANTIZATIONS, exactCandidates, hnswGraph, rerankCandidates, type HnswQuantization } from "../services/ranking/src/index/gallery.js";
import { loadIndex } from "../services/ranking/src/index/store.js";
import { toF32 } from "../services/ranking/src/index/topk.js";
import { readAlias } from "../services/ranking/src/registry.js";
import { percentile } from "./stats.js";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");
const { values: a } = parseArgs({
  options: {
    sizes: { type: "string", default: "8091,100000,1000000" },
    queries: { type: "string", default: "300" },
    /** Queries whose exact top 10 is computed (recall is over these); default: all of them. */
    "exact-queries": { type: "string" },
    ef: { type: "string", default: `128,${DEFAULT_HNSW.expansionSearch},320` },
    /** Candidates re-scored exactly at each ef_search (the first of the graph's answer; "all": ef_search of them). */
    rerank: { type: "string", default: String(rerankCandidates(10)) },
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
    /** Graph configurations: every combination of these comma-separated lists. */
    quantization: { type: "string", default: DEFAULT_HNSW.quantization },
    connectivity: { type: "string", default: String(DEFAULT_HNSW.connectivity) },
    "expansion-add": { type: "string", default: String(DEFAULT_HNSW.expansionAdd) },
    seed: { type: "string", default: "20261206" },
    /** Where built graphs are kept between runs (git-ignored). */
    "graph-dir": { type: "string", default: join(ROOT, ".artifacts", "hnsw-graphs") },
  },
});

const log = (s: string) => process.stderr.write(`${s}\n`);
const list = (s: string) => s.split(",").map((x) => x.trim()).filter(Boolean);
const load = () => loadavg().map((x) => Number(x.toFixed(2)));

interface GraphConfig {
  quantization: HnswQuantization;
  connectivity: number;
  expansionAdd: number;
}

const configName = (c: GraphConfig) => `${c.quantization} M=${c.connectivity} efc=${c.expansionAdd}`;
const configTag = (c: GraphConfig) => `${c.quantization === "f32" ? "" : `${c.quantization}-`}m${c.connectivity}-efc${c.expansionAdd}`;

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

/**
 * `fn`'s wall time and the CPU time (user + system) this process spent meanwhile, in ms: on a
 * machine others load, a one-thread query's wall time waits for a core, its CPU time does not.
 */
function timedCpu<T>(fn: () => T): [T, number, number] {
  const c = process.cpuUsage();
  const [r, ms] = timed(fn);
  const u = process.cpuUsage(c);
  return [r, ms, (u.user + u.system) / 1000];
}

const lat = (t: number[]) => {
  const s = [...t].sort((x, y) => x - y);
  return { p50: percentile(s, 50), p99: percentile(s, 99) };
};
/** Wall p50/p99 and the CPU time's p50. */
const latCpu = (t: number[], cpu: number[]) => ({ ...lat(t), cpu_p50: lat(cpu).p50 });

interface EfRow {
  ef: number;
  /** The graph's own top 10. */
  graph: { p50: number; p99: number; cpu_p50: number; recall10: number };
  /** The graph's first `candidates` re-scored with the float32 rows, top 10 kept (Ranking's search at --rerank 72). */
  reranked: { candidates: number; p50: number; p99: number; cpu_p50: number; recall10: number }[];
  load_average: number[];
}

interface GraphRow {
  config: GraphConfig;
  build: { seconds: number; threads: number; load_average_before: number[]; load_average_after: number[]; cached: boolean };
  file_bytes: number;
  /** Resident memory the loaded graph added to this process. */
  loaded_rss_bytes: number;
  /** graph: the graph's file; graph_resident: what loading it added to this process (usearch's bookkeeping on top); memory: that plus the float32 rows. */
  bytes_per_image: { graph: number; graph_resident: number; memory: number; disk: number };
  runs: EfRow[];
}

interface SizeRow {
  images: number;
  exact: { p50: number; p99: number; cpu_p50: number; queries: number; load_average: number[] };
  bytes_per_image_exact: { memory: number; disk: number };
  graphs: GraphRow[];
}

/** Builds the graph of `base` (or takes it from --graph-dir) and measures it at every ef. */
function measureGraph(base: Float32Array, d: number, n: number, c: GraphConfig, queries: Float32Array[], truth: Set<number>[], dataTag: string): GraphRow {
  const threads = Number(a["build-threads"]);
  // The graph is cached across runs (--graph-dir): a million-image build takes 18–50 min on 2 cores.
  const file = join(a["graph-dir"], `hnsw-n${n}-${configTag(c)}-seed${a.seed}-${dataTag}.usearch`);
  const meta = `${file}.json`;
  const graph = (expansionSearch: number) => hnswGraph(d, { ...c, expansionSearch });
  let build: GraphRow["build"];
  if (existsSync(file) && existsSync(meta)) {
    build = { ...(JSON.parse(readFileSync(meta, "utf8")) as Omit<GraphRow["build"], "cached">), cached: true };
    log(`  ${configName(c)}: graph from ${file} (built earlier in ${build.seconds.toFixed(1)} s)`);
  } else {
    const idx = graph(64);
    const keys = new BigUint64Array(n);
    for (let i = 0; i < n; i++) keys[i] = BigInt(i);
    const before = load();
    const [, ms] = timed(() => idx.add(keys, base, threads));
    build = { seconds: ms / 1000, threads, load_average_before: before, load_average_after: load(), cached: false };
    mkdirSync(a["graph-dir"], { recursive: true });
    idx.save(file);
    writeFileSync(meta, JSON.stringify({ seconds: build.seconds, threads, load_average_before: before, load_average_after: build.load_average_after }));
    log(`  ${configName(c)}: built in ${build.seconds.toFixed(1)} s (${threads} threads; load ${before.join(" ")} → ${build.load_average_after.join(" ")})`);
  }
  const fileBytes = statSync(file).size;
  // Loaded into memory as Ranking loads it (useHnsw); expansion_search 1, so ef is what each search asks for.
  const rss0 = process.memoryUsage().rss;
  const view = graph(1);
  view.load(file);
  const loadedRss = process.memoryUsage().rss - rss0;
  for (let i = 0; i < 50; i++) view.search(queries[i % queries.length]!, 64, 1); // warm the caches
  const runs: EfRow[] = [];
  for (const ef of list(a.ef).map(Number)) {
    const t: number[] = [];
    const tc: number[] = [];
    let hit = 0;
    // Passes one after another, not searches of one query one after another: a second search of
    // the same query would find the graph's pages in the CPU caches the first one filled.
    for (let i = 0; i < queries.length; i++) {
      const [m, ms, cpu] = timedCpu(() => view.search(queries[i]!, Math.max(ef, 10), 1));
      t.push(ms);
      tc.push(cpu);
      if (i < truth.length) for (const k of m.keys.subarray(0, 10)) if (truth[i]!.has(Number(k))) hit++;
    }
    const reranked: EfRow["reranked"] = [];
    for (const r of list(a.rerank)) {
      const candidates = r === "all" ? ef : Number(r);
      const tr: number[] = [];
      const trc: number[] = [];
      let hitRe = 0;
      for (let i = 0; i < queries.length; i++) {
        const q = queries[i]!;
        // As Ranking searches (gallery.ts searchHnsw): a beam of ef_search, its first candidates scored exactly, the best 10 kept.
        const [top, ms, cpu] = timedCpu(() => {
          const m = view.search(q, Math.max(ef, candidates), 1);
          return exactCandidates(base, d, q, m.keys.subarray(0, candidates), n).sort((x, y) => y.score - x.score || x.row - y.row).slice(0, 10);
        });
        tr.push(ms);
        trc.push(cpu);
        if (i < truth.length) for (const h of top) if (truth[i]!.has(h.row)) hitRe++;
      }
      reranked.push({ candidates, ...latCpu(tr, trc), recall10: hitRe / (truth.length * 10) });
    }
    const row: EfRow = { ef, graph: { ...latCpu(t, tc), recall10: hit / (truth.length * 10) }, reranked, load_average: load() };
    log(`    ef ${ef}: graph ${row.graph.p50.toFixed(2)} ms (CPU ${row.graph.cpu_p50.toFixed(2)}) ${(row.graph.recall10 * 100).toFixed(1)} %; ${reranked.map((x) => `${x.candidates} re-ranked ${x.p50.toFixed(2)} / ${x.p99.toFixed(2)} ms (CPU ${x.cpu_p50.toFixed(2)}) ${(x.recall10 * 100).toFixed(1)} %`).join("; ")} (load ${row.load_average.join(" ")})`);
    runs.push(row);
  }
  const exactMemory = (d + 1) * 4;
  return {
    config: c,
    build,
    file_bytes: fileBytes,
    loaded_rss_bytes: loadedRss,
    // Ranking keeps the float32 rows plus the query-bank bias column (d + 1 floats), and the graph beside them.
    bytes_per_image: { graph: fileBytes / n, graph_resident: Math.max(loadedRss, fileBytes) / n, memory: exactMemory + Math.max(loadedRss, fileBytes) / n, disk: d * 4 + fileBytes / n },
    runs,
  };
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
  const configs: GraphConfig[] = [];
  for (const qz of list(a.quantization)) {
    if (!(HNSW_QUANTIZATIONS as readonly string[]).includes(qz)) throw new Error(`--quantization: ${qz} is not one of ${HNSW_QUANTIZATIONS.join(", ")}`);
    for (const m of list(a.connectivity)) for (const efc of list(a["expansion-add"])) configs.push({ quantization: qz as HnswQuantization, connectivity: Number(m), expansionAdd: Number(efc) });
  }
  const dataTag = createHash("sha256").update(new Uint8Array(real.images.buffer, 0, Math.min(real.images.byteLength, 1 << 20))).digest("hex").slice(0, 12);
  log(`real vectors: ${real.images.length / d} images of ${real.source}; ${d}-d; ${nq} caption queries; graphs ${configs.map(configName).join("; ")}; load ${load().join(" ")}`);
  const rows: SizeRow[] = [];
  for (const n of list(a.sizes).map(Number)) {
    // The drawn vectors are cached beside the graphs (a million takes minutes to draw).
    const vectors = join(a["graph-dir"], `gallery-n${n}-seed${a.seed}-${dataTag}.f32`);
    const [base, tGen] = timed(() => {
      if (existsSync(vectors)) return toF32(readFileSync(vectors));
      const g = gallery(real.images, d, n, fit, Number(a.seed));
      mkdirSync(a["graph-dir"], { recursive: true });
      writeFileSync(vectors, new Uint8Array(g.buffer, g.byteOffset, g.byteLength));
      return g;
    });
    log(`${n} images (${(tGen / 1000).toFixed(1)} s to draw the synthetic part, or read it from ${vectors})…`);
    // Exact: one thread, and the truth recall is measured against.
    const exactQueries = Math.min(nq, Number(a["exact-queries"] ?? nq));
    const truth: Set<number>[] = [];
    const tExact: number[] = [];
    const cExact: number[] = [];
    for (let i = 0; i < exactQueries; i++) {
      const [m, t, cpu] = timedCpu(() => usearch.exactSearch(base, queries[i]!, d, 10, usearch.MetricKind.IP, 1) as { keys: BigUint64Array });
      truth.push(new Set([...m.keys].map(Number)));
      tExact.push(t);
      cExact.push(cpu);
    }
    const exact = { ...latCpu(tExact, cExact), queries: exactQueries, load_average: load() };
    log(`  exact ${exact.p50.toFixed(2)} / ${exact.p99.toFixed(2)} ms (CPU ${exact.cpu_p50.toFixed(2)}; load ${exact.load_average.join(" ")})`);
    rows.push({ images: n, exact, bytes_per_image_exact: { memory: (d + 1) * 4, disk: d * 4 }, graphs: configs.map((c) => measureGraph(base, d, n, c, queries, truth, dataTag)) });
  }

  const limit = Number(a["memory-limit-mib"]) * 2 ** 20;
  const baseRss = Number(a["base-rss-mib"]) * 2 ** 20;
  // Flickr8K-like galleries carry five captions per image (searched exactly by image→text);
  // collections without captions carry only the images.
  const capacity = (perImage: number) => Math.floor((limit - baseRss) / perImage);
  const big = rows[rows.length - 1]!;
  const exactMemory = big.bytes_per_image_exact.memory;
  const replica = {
    exact_images_only: capacity(exactMemory),
    exact_with_5_captions: capacity(exactMemory * 6),
    hnsw: Object.fromEntries(big.graphs.map((g) => [configName(g.config), { images_only: capacity(g.bytes_per_image.memory), with_5_captions: capacity(g.bytes_per_image.memory + exactMemory * 5) }])),
  };

  const f = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(2));
  const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
  console.log(`\n## Scale curve — top-10 image search, one query at a time on one thread (${real.source} + Gaussian-matched synthetic vectors)\n`);
  console.log("| images | exact p50 / p99 ms (CPU p50) | graph | build s (threads) | bytes/image: graph file (resident) + float32 rows = in memory | ef_search | graph top-10 p50 / p99 ms (CPU p50) | recall@10 | candidates re-scored | p50 / p99 ms (CPU p50) | recall@10 | load average |");
  console.log("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of rows) {
    let first = true;
    for (const g of r.graphs) {
      let firstOfGraph = true;
      for (const h of g.runs) {
        h.reranked.forEach((x, j) => {
          const cells = [
            first ? r.images.toLocaleString("en") : "",
            first ? `${f(r.exact.p50)} / ${f(r.exact.p99)} (${f(r.exact.cpu_p50)})` : "",
            firstOfGraph ? configName(g.config) : "",
            firstOfGraph ? `${g.build.seconds.toFixed(1)} (${g.build.threads})` : "",
            firstOfGraph ? `${g.bytes_per_image.graph.toFixed(0)} (${g.bytes_per_image.graph_resident.toFixed(0)}) + ${r.bytes_per_image_exact.memory} = ${g.bytes_per_image.memory.toFixed(0)}` : "",
            j === 0 ? String(h.ef) : "",
            j === 0 ? `${f(h.graph.p50)} / ${f(h.graph.p99)} (${f(h.graph.cpu_p50)})` : "",
            j === 0 ? pct(h.graph.recall10) : "",
            String(x.candidates),
            `${f(x.p50)} / ${f(x.p99)} (${f(x.cpu_p50)})`,
            pct(x.recall10),
            j === 0 ? h.load_average[0]!.toFixed(1) : "",
          ];
          console.log(`| ${cells.join(" | ")} |`);
          first = false;
          firstOfGraph = false;
        });
      }
    }
  }
  console.log(`\nOne Ranking replica within ${a["memory-limit-mib"]} MiB (less ${a["base-rss-mib"]} MiB for the process and model), images only / with five captions per image: ` +
    `exact ${replica.exact_images_only.toLocaleString("en")} / ${replica.exact_with_5_captions.toLocaleString("en")}; ` +
    Object.entries(replica.hnsw).map(([k, v]) => `${k} ${v.images_only.toLocaleString("en")} / ${v.with_5_captions.toLocaleString("en")}`).join("; ") + ".");
  mkdirSync(join(ROOT, ".artifacts"), { recursive: true });
  const out = join(ROOT, ".artifacts", `bench-scale-${configs.map(configTag).join("+")}.json`);
  writeFileSync(out, `${JSON.stringify({ source: real.source, dim: d, queries: nq, sizes: rows.map((r) => r.images), configs, rows, replica_capacity: replica, memory_limit_mib: Number(a["memory-limit-mib"]), base_rss_mib: Number(a["base-rss-mib"]), load_average: load(), at: new Date().toISOString() }, null, 2)}\n`);
  log(`JSON in ${out}`);
}

await main();
