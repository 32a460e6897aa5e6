/**
 * Ranking benchmarks (`npm run bench:ranking`):
 *
 *   npx tsx --conditions=source bench/ranking.bench.ts [--gallery full|demo] [--store-dir .data/store] [--bucket glimpse]
 *                                  [--model m-…] [--max-batch 32] [--threads 0] [--quick] [--no-recall] [--no-gateway]
 *
 * Starts Ranking and the gateway as child processes from their compiled dist/main.js (as
 * `glimpse up` does; `npm run bench:ranking` runs `npm run build` first), then measures
 * p50/p99 latency and throughput of text→image, image→text by gallery id and upload→captions
 * (a 500×375 JPEG) at concurrency 1 and 32, over direct gRPC and through the gateway
 * (Connect JSON over HTTP/1.1). Then the end-to-end Recall@K check: every test caption
 * through SearchImages (scope: test split) and every test image through SearchCaptions,
 * compared with the model's offline metrics.json.
 *
 * --gallery full (default) serves the dataset `flickr8k` published in --store-dir with the
 * production model (or --model); --gallery demo seeds a scratch store from demo/.
 * Results also go to .artifacts/bench-ranking-<gallery>.json.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { dataset as ds, ranking } from "@glimpse/api";
import { createObjectStore } from "@glimpse/objectstore";
import { freePorts } from "@glimpse/runtime/testing";
import { startPeer, type RunningPeer } from "./peers/fastapi-onnx.js";
import { ratios, sideBySide, type SideBySide } from "./side-by-side.js";
import { waitServing, stopChild } from "./children.js";
import { cpuOf, load, table, type Result } from "./load.js";
import { percentile, rssMiB } from "./stats.js";
import { readBlob, readCaptions, readPublished, readSplits } from "@glimpse/pipeline";
import sharp from "sharp";
import { LoadedModel } from "../services/ranking/src/model/model.js";
import { indexPrefix, loadIndex } from "../services/ranking/src/index/store.js";
import { buildIndex } from "../services/ranking/src/index/build.js";
import { fetchModel, readAlias } from "../services/ranking/src/registry.js";
import { datasetVersionOf, uploadDataset } from "../services/ranking/src/seed.js";
import { readFlickr8k } from "../services/ranking/src/tools/zip.js";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");
const { values: args } = parseArgs({
  options: {
    gallery: { type: "string", default: "full" },
    "store-dir": { type: "string", default: join(ROOT, ".data", "store") },
    bucket: { type: "string", default: "glimpse" },
    model: { type: "string" },
    /** The original Flickr8K archives, for the same-bytes Recall@K check (default ../shared/datasets/flickr8k). */
    flickr8k: { type: "string", default: join(ROOT, "..", "shared", "datasets", "flickr8k") },
    "max-batch": { type: "string", default: "32" },
    threads: { type: "string", default: "0" },
    /** Ranking's encoder worker threads (GLIMPSE_RANKING_ENCODER_WORKERS; 0 = the encoders on its main thread). */
    "encoder-workers": { type: "string" },
    quick: { type: "boolean", default: false },
    "no-recall": { type: "boolean", default: false },
    "recall-only": { type: "boolean", default: false },
    /** Scenarios to run: text, id, upload (comma separated). */
    only: { type: "string", default: "text,id,upload" },
    /** Concurrency levels (comma separated). */
    conc: { type: "string", default: "1,32" },
    "no-gateway": { type: "boolean", default: false },
    /**
     * Paths to measure (comma separated): grpc (direct), gateway (Connect JSON), rest (the
     * gateway's REST paths side by side with the seed-style peer, through one HTTP client).
     */
    paths: { type: "string", default: "grpc,gateway,rest" },
    /** Interleaved rounds of the side-by-side runs (medians reported). */
    rounds: { type: "string", default: "3" },
    /** The peer's uvicorn workers and onnxruntime/BLAS threads per worker (bench/peers/README.md). */
    "peer-workers": { type: "string", default: "2" },
    "peer-threads": { type: "string", default: "1" },
    "no-profile": { type: "boolean", default: false },
    /** Write a V8 CPU profile of the Ranking process and print its hottest functions. */
    "cpu-prof": { type: "boolean", default: false },
    /** Let the direct gRPC client accept gzip'd responses (connect-node's default; the server then compresses every response over 1 KiB). */
    "grpc-gzip": { type: "boolean", default: false },
  },
});

type RankingClient = Client<typeof ranking.RankingService>;
const log = (s: string) => process.stderr.write(`${s}\n`);

function startChild(name: string, main: string, env: NodeJS.ProcessEnv, nodeArgs: string[] = []): ChildProcess {
  const child = spawn(process.execPath, [...nodeArgs, join(ROOT, main)], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "inherit", "inherit"] });
  child.on("exit", (code, sig) => code !== 0 && sig !== "SIGTERM" && log(`${name} exited (${sig ?? code})`));
  return child;
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time per function (top 25) and per package, from a V8 .cpuprofile. */
function summarizeProfile(p: CpuProfile): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const fn = new Map<string, number>();
  const pkg = new Map<string, number>();
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame;
    const where = cf.url.replace(/^file:\/\//, "").replace(ROOT + "/", "");
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(where);
    const group = cf.functionName === "(idle)" ? "(idle)" : cf.functionName === "(garbage collector)" ? "(gc)" : m ? m[1]! : where.startsWith("node:") ? "node internals" : where === "" ? "(native/program)" : where.split("/").slice(0, 3).join("/");
    pkg.set(group, (pkg.get(group) ?? 0) + us);
    const key = `${cf.functionName || "(anonymous)"} ${where ? `${where.split("/").slice(-2).join("/")}:${cf.lineNumber + 1}` : ""}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
  }
  const pct = (us: number) => `${((us / total) * 100).toFixed(1)}%`;
  const top = (m: Map<string, number>, k: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, k);
  return [
    "| where | self time |",
    "|---|---:|",
    ...top(pkg, 15).map(([k, v]) => `| ${k} | ${pct(v)} |`),
    "",
    "| function | self time |",
    "|---|---:|",
    ...top(fn, 25).map(([k, v]) => `| ${k.replace(/\|/g, "\\|")} | ${pct(v)} |`),
  ].join("\n");
}

/** Recall@1/5/10 of a gallery's test split through SearchImages and SearchCaptions (32 in flight). */
async function recallVia(grpc: RankingClient, name: string, datasetVersion: string, testIds: string[], caps: Record<string, string[]>) {
  const t0 = performance.now();
  const test = testIds.filter((id) => (caps[id] ?? []).length > 0).sort();
  const pairs = test.flatMap((id) => caps[id]!.map((c) => [id, c] as const));
  const scope = { datasetVersion, split: ds.Split.TEST };
  const pool = async (n: number, fn: (i: number) => Promise<void>) => {
    let next = 0;
    await Promise.all(Array.from({ length: 32 }, async () => { for (let i = next++; i < n; i = next++) await fn(i); }));
  };
  const t2i: number[] = new Array(pairs.length);
  await pool(pairs.length, async (i) => {
    const [id, cap] = pairs[i]!;
    const r = await grpc.searchImages({ query: cap.slice(0, 512), topK: 10, scope });
    const pos = r.results.findIndex((h) => h.imageId === id);
    t2i[i] = pos < 0 ? 11 : pos + 1;
  });
  const i2t: number[] = new Array(test.length);
  await pool(test.length, async (i) => {
    const r = await grpc.searchCaptions({ image: { case: "imageId", value: test[i]! }, topK: 10, scope });
    const pos = r.results.findIndex((h) => h.imageId === test[i]);
    i2t[i] = pos < 0 ? 11 : pos + 1;
  });
  const summary = (r: number[]) => Object.fromEntries([1, 5, 10].map((k) => [`r${k}`, Math.round((r.filter((x) => x <= k).length / r.length) * 10000) / 100]));
  return { gallery: name, dataset_version: datasetVersion, t2i: summary(t2i), i2t: summary(i2t), images: test.length, captions: pairs.length, seconds: (performance.now() - t0) / 1000 };
}

async function main(): Promise<void> {
  const gallery = args.gallery === "demo" ? "demo" : "full";
  const quick = args.quick;
  const scratch = mkdtempSync(join(tmpdir(), "glimpse-bench-"));
  let dataDir: string;
  if (gallery === "demo") dataDir = scratch;
  else {
    const storeDir = resolve(args["store-dir"]);
    if (basename(storeDir) === "store") dataDir = dirname(storeDir);
    else {
      dataDir = scratch;
      symlinkSync(storeDir, join(scratch, "store"));
    }
  }
  const store = createObjectStore({ kind: "fs", root: join(dataDir, "store"), bucket: args.bucket });
  const dataset = gallery === "demo" ? "flickr8k-demo" : "flickr8k";
  const children: ChildProcess[] = [];
  let peer: RunningPeer | undefined;
  const cleanup = () => {
    for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
    void peer?.stop();
    rmSync(scratch, { recursive: true, force: true });
  };
  process.on("SIGINT", () => {
    cleanup();
    process.exit(130);
  });

  try {
    let version = args.model;
    if (gallery === "full") {
      version ??= await readAlias(store);
      if (!version) throw new Error(`no production model in ${join(dataDir, "store", args.bucket)}: promote one or pass --model`);
      const pub = await readPublished(store, dataset).catch(() => undefined);
      if (!pub) throw new Error(`dataset ${dataset} is not published in ${join(dataDir, "store")}: run the pipeline first`);
      // Build the index here (once; it is stored) so the server starts serving at once.
      if (!(await loadIndex(store, version, dataset, pub.version))) {
        log(`building the ${dataset} ${pub.version} index for ${version} (stored for next time)…`);
        const f = await fetchModel(store, version);
        const m = await LoadedModel.load(version, f.files, {});
        let last = 0;
        await buildIndex({ store, model: m, dataset, datasetVersion: pub.version, onProgress: (p) => (Date.now() - last > 10_000 ? ((last = Date.now()), log(`  ${p.stage} ${p.done}/${p.total}`)) : undefined) });
        await m.release();
      }
    }

    const [rankingPort, gatewayPort, m1, dead, peerPort] = (await freePorts(5)) as [number, number, number, number, number];
    const env = {
      GLIMPSE_DATA_DIR: dataDir,
      MINIO_BUCKET: args.bucket,
      GLIMPSE_ALLOW_OPEN: "true",
      GLIMPSE_LOG_LEVEL: "warn",
      GLIMPSE_RANKING_PORT: String(rankingPort),
      GLIMPSE_RANKING_METRICS_PORT: String(m1),
      GLIMPSE_GATEWAY_PORT: String(gatewayPort),
      GLIMPSE_RANKING_URL: `http://127.0.0.1:${rankingPort}`,
      GLIMPSE_TRAINING_URL: `http://127.0.0.1:${dead}`,
      GLIMPSE_DATA_URL: `http://127.0.0.1:${dead}`,
      GLIMPSE_RANKING_DATASET: dataset,
      GLIMPSE_RANKING_SEED_DEMO: gallery === "demo" ? "true" : "false",
      GLIMPSE_RANKING_MAX_BATCH: args["max-batch"],
      GLIMPSE_RANKING_INTRA_OP_THREADS: args.threads,
      // as `glimpse up` and the image run the services (lifecycle/memory.ts)
      MALLOC_MMAP_THRESHOLD_: "131072",
      ...(args["encoder-workers"] !== undefined ? { GLIMPSE_RANKING_ENCODER_WORKERS: args["encoder-workers"] } : {}),
      ...(version ? { GLIMPSE_RANKING_MODEL_VERSION: version } : {}),
    };
    const rankingUrl = `http://127.0.0.1:${rankingPort}`;
    const t0 = performance.now();
    const profDir = join(scratch, "cpu-prof");
    const prof = (name: string) => (args["cpu-prof"] ? ["--cpu-prof", "--cpu-prof-dir", join(profDir, name)] : []);
    children.push(startChild("ranking", "services/ranking/dist/main.js", env, prof("ranking")));
    const rankingPid = children[0]!.pid;
    cpuOf.server = () => [rankingPid];
    let gatewayPid: number | undefined;
    await waitServing(rankingUrl, children[0]!, 600_000);
    log(`ranking serving after ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    if (!args["no-gateway"]) {
      children.push(startChild("gateway", "services/gateway/dist/main.js", env, prof("gateway")));
      gatewayPid = children[1]!.pid;
      cpuOf.gateway = () => [gatewayPid];
    }

    // A plain gRPC client, like grpcurl or grpc-go's default: no response compression on loopback.
    const grpc: RankingClient = createClient(ranking.RankingService, createGrpcTransport({ baseUrl: rankingUrl, ...(args["grpc-gzip"] ? {} : { acceptCompression: [] }) }));
    const status = await grpc.getModelStatus({});
    const dv = status.index!.datasetVersion;
    const info = (await grpc.getModelInfo({})).model!;
    log(`model ${status.servingVersion}, gallery ${dataset} ${dv}: ${status.index!.images} images, ${status.index!.captions} captions`);

    // Inputs: real captions as queries (distinct, so no query cache hits), gallery ids, 500×375 JPEGs.
    const pub = await readPublished(store, dataset, dv);
    const [caps, splits] = await Promise.all([readCaptions(store, pub.manifest), readSplits(store, pub.manifest)]);
    const ids = Object.keys(pub.manifest.images).sort();
    const queries = ids.flatMap((id) => caps[id] ?? []);
    const shuffle = <T>(a: T[]) => a.map((x, i) => [((i * 2654435761) >>> 0) % 1000003, x] as const).sort((p, q) => p[0] - q[0]).map((p) => p[1]);
    const qs = shuffle(queries);
    const idList = shuffle(ids);
    const uploads: Buffer[] = [];
    for (const id of idList.slice(0, 8)) {
      uploads.push(await sharp(await readBlob(store, pub.manifest.images[id]!)).resize(500, 375, { fit: "fill" }).jpeg({ quality: 90 }).toBuffer());
    }
    log(`upload JPEGs: 500×375, ${Math.round(uploads.reduce((a, b) => a + b.length, 0) / uploads.length / 1024)} KB average`);

    let gw: RankingClient | undefined;
    if (!args["no-gateway"]) {
      gw = createClient(ranking.RankingService, createConnectTransport({ baseUrl: `http://127.0.0.1:${gatewayPort}`, httpVersion: "1.1", useBinaryFormat: false }));
      const end = Date.now() + 30_000;
      for (;;) {
        try {
          await gw.getModelStatus({});
          break;
        } catch (err) {
          if (Date.now() > end) throw err;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    }

    const results: Result[] = [];
    const n = (c1: number, c32: number, c: number) => (quick ? Math.ceil((c === 1 ? c1 : c32) / 4) : c === 1 ? c1 : c32);
    let qi = 0;
    const want = args.paths.split(",");
    const paths: [string, RankingClient][] = [...(want.includes("grpc") ? ([["gRPC", grpc]] as [string, RankingClient][]) : []), ...(gw && want.includes("gateway") ? ([["gateway (Connect JSON)", gw]] as [string, RankingClient][]) : [])];
    for (const [path, c] of args["recall-only"] ? [] : paths) {
      const only = args.only.split(",");
      for (const conc of args.conc.split(",").map(Number)) {
        const runs: Result[] = [];
        if (only.includes("text")) runs.push(await load("text→image", path, conc, n(500, 3000, conc), () => c.searchImages({ query: qs[qi++ % qs.length]!, topK: 10 })));
        if (only.includes("id")) runs.push(await load("image→text by id", path, conc, n(500, 3000, conc), (i) => c.searchCaptions({ image: { case: "imageId", value: idList[i % idList.length]! }, topK: 10 })));
        if (only.includes("upload")) runs.push(await load("upload→captions", path, conc, n(150, 400, conc), (i) => c.rankUploadedImage({ image: uploads[i % uploads.length]!, topKCaptions: 5 }), 5));
        for (const r of runs) log(table([r]).split("\n")[2]!);
        results.push(...runs);
      }
    }

    // ---- side by side with the seed-style peer, through the same HTTP client ------------------
    let side: SideBySide | undefined;
    if (gw && want.includes("rest") && !args["recall-only"]) {
      peer = await startPeer(
        { store, modelVersion: status.servingVersion, indexPrefix: indexPrefix(status.servingVersion, dataset, dv), scratch, port: peerPort, workers: Number(args["peer-workers"]), threads: Number(args["peer-threads"]) },
        log,
      );
      const running = peer;
      log(`peer (FastAPI + onnxruntime, ${args["peer-workers"]} workers × ${args["peer-threads"]} thread) at ${peer.url}`);
      side = await sideBySide({
        targets: [
          { name: "Glimpse gateway", url: `http://127.0.0.1:${gatewayPort}`, server: () => [rankingPid], gateway: () => [gatewayPid] },
          // The same REST paths answered by the Ranking process itself: no relay.
          { name: "Glimpse ranking", url: rankingUrl, server: () => [rankingPid], gateway: () => [] },
          { name: "peer", url: peer.url, server: () => running.pids(), gateway: () => [] },
        ],
        queries: qs,
        uploads,
        rounds: Number(args.rounds),
        concurrency: args.conc.split(",").map(Number),
        scenarios: args.only.split(",").filter((s) => s === "text" || s === "upload"),
        text: quick ? [150, 800] : [500, 3000],
        upload: quick ? [40, 100] : [150, 400],
        log,
      });
      await peer.stop();
      peer = undefined;
    }

    // ---- where the time goes: the same work in this process, piece by piece ------------------
    let profile: Record<string, number> | undefined;
    if (!args["no-profile"] && !args["recall-only"]) {
      const f = await fetchModel(store, status.servingVersion);
      const m = await LoadedModel.load(status.servingVersion, f.files, { intraOpThreads: Number(args.threads) });
      const idx = (await loadIndex(store, status.servingVersion, dataset, dv, "exact", m.queryBank))!.index;
      const med = async (k: number, fn: (i: number) => Promise<unknown> | unknown) => {
        const t: number[] = [];
        for (let i = 0; i < k; i++) {
          const s = performance.now();
          await fn(i);
          t.push(performance.now() - s);
        }
        return percentile(t.sort((a, b) => a - b), 50);
      };
      const q = await m.embedTexts([qs[0]!]);
      const up = await m.preprocessor.fromEncoded(uploads[0]!);
      profile = {
        tokenize_ms: await med(500, (i) => m.tokenizer.encode(qs[i % qs.length]!)),
        text_encoder_1_ms: await med(200, (i) => m.encoders.encodeTokens(m.tokenizer.batch([qs[(i + 7) % qs.length]!]))),
        text_encoder_32_per_query_ms: (await med(30, (i) => m.encoders.encodeTokens(m.tokenizer.batch(qs.slice(i * 32, i * 32 + 32)))) ) / 32,
        image_search_top10_ms: await med(500, () => idx.searchImages(q, 10)),
        caption_search_top10_ms: await med(300, () => idx.searchCaptions(q, 10)),
        preprocess_500x375_jpeg_ms: await med(60, (i) => m.preprocessor.fromEncoded(uploads[i % uploads.length]!)),
        image_encoder_1_ms: await med(40, () => m.encoders.encodePixels(up.data, 1, m.preprocessor)),
      };
      await m.release();
    }

    // ---- Recall@K through the public API -------------------------------------------------------
    // Each test caption through SearchImages and each test image through SearchCaptions (scope:
    // the test split), ranks read off the top 10. On the published gallery, and — for a
    // same-bytes comparison with the offline evaluation, which reads the original archive — on
    // the test split published from the original JPEG bytes and indexed through BuildIndex.
    const recall: { gallery: string; dataset_version: string; t2i: Record<string, number>; i2t: Record<string, number>; images: number; captions: number; seconds: number }[] = [];
    let offline: Record<string, unknown> | undefined;
    if (!args["no-recall"] && splits.test.length > 0) {
      recall.push(await recallVia(grpc, `${dataset} (published)`, dv, splits.test, caps));
      if (gallery === "full" && existsSync(join(args.flickr8k, "Flickr8k_Dataset.zip"))) {
        const f = await readFlickr8k(args.flickr8k, (id, sp) => sp.test.includes(id));
        const raw = datasetVersionOf("flickr8k-raw-test", f.images, Object.fromEntries(f.captions), { train: [], dev: [], test: f.splits.test }, { source: "original archive bytes, test split" }, `file:${join(args.flickr8k, "Flickr8k_Dataset.zip")}`);
        await uploadDataset(store, raw);
        const t2 = performance.now();
        // the model this bench serves (--model pins one), not the production alias an index build defaults to
        const { indexBuild } = await grpc.createIndexBuild({ indexBuild: { datasetVersion: raw.version, modelVersion: status.servingVersion } });
        for await (const m of grpc.watchIndexBuild({ name: indexBuild!.name })) {
          if (m.indexBuild?.state === ranking.IndexBuildState.SUCCEEDED) log(`raw test split ${raw.version} indexed (${((performance.now() - t2) / 1000).toFixed(0)} s)`);
          else if (m.indexBuild && m.indexBuild.state !== ranking.IndexBuildState.RUNNING) throw new Error(`index build ${m.indexBuild.name}: ${m.indexBuild.detail}`);
        }
        recall.push(await recallVia(grpc, "flickr8k test split, original bytes", raw.version, raw.manifest.images ? Object.keys(raw.manifest.images) : [], Object.fromEntries(f.captions)));
      }
      try {
        const metrics = JSON.parse((await store.getBuffer(`models/${status.servingVersion}/metrics.json`)).toString("utf8")) as Record<string, unknown>;
        offline = { split: metrics["split"], t2i: metrics["t2i"], i2t: metrics["i2t"], n_images: metrics["n_images"], n_captions: metrics["n_captions"], dataset: metrics["dataset"], mode: metrics["mode"] };
      } catch {
        // no metrics.json
      }
    }

    // ---- report --------------------------------------------------------------------------------
    const out = {
      gallery,
      dataset,
      dataset_version: dv,
      model_version: status.servingVersion,
      backbone: info.backbone,
      images: Number(status.index!.images),
      captions: Number(status.index!.captions),
      max_batch: Number(args["max-batch"]),
      intra_op_threads: Number(args.threads),
      encoder_workers: args["encoder-workers"] === undefined ? undefined : Number(args["encoder-workers"]),
      load_average: loadavg(),
      ranking_rss_mib: rssMiB(children[0]!.pid),
      results,
      side_by_side: side,
      profile,
      recall,
      offline,
      at: new Date().toISOString(),
    };
    console.log(`\n## Ranking benchmark — ${dataset} ${dv} (${out.images} images, ${out.captions} captions), model ${out.model_version}\n`);
    log(`ranking resident memory: ${out.ranking_rss_mib.toFixed(0)} MiB`);
    if (results.length > 0) console.log(table(results));
    if (side) {
      console.log(`\nSide by side through one HTTP client (REST; medians of ${args.rounds} interleaved rounds; peer: FastAPI + onnxruntime + numpy, uvicorn ${args["peer-workers"]} workers × ${args["peer-threads"]} thread):\n`);
      console.log(table(side.medians));
      console.log("");
      console.log(ratios(side.medians, "peer"));
    }
    if (profile) {
      console.log("\nWhere the time goes (in-process medians, ms):\n");
      console.log(["| step | ms |", "|---|---:|", ...Object.entries(profile).map(([k, v]) => `| ${k} | ${v.toFixed(3)} |`)].join("\n"));
    }
    if (recall.length > 0) {
      console.log(`\nRecall@K through the API (test split, ranks from the top 10):\n`);
      const off = offline as { t2i?: Record<string, number>; i2t?: Record<string, number>; dataset?: string } | undefined;
      const rows = ["| gallery | images | captions | t2i R@1 | t2i R@5 | t2i R@10 | i2t R@1 | i2t R@5 | i2t R@10 |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"];
      const fmt = (d: Record<string, number> | undefined) => [1, 5, 10].map((k) => (d?.[`r${k}`] !== undefined ? d[`r${k}`]!.toFixed(2) : "-")).join(" | ");
      for (const r of recall) rows.push(`| API: ${r.gallery} (${r.dataset_version}) | ${r.images} | ${r.captions} | ${fmt(r.t2i)} | ${fmt(r.i2t)} |`);
      // The offline figures are over the whole 1000-image test split: comparable to the full gallery only.
      if (off && gallery === "full") rows.push(`| offline metrics.json (${off.dataset ?? "?"}) | ${String((offline as Record<string, unknown>)["n_images"] ?? "")} | ${String((offline as Record<string, unknown>)["n_captions"] ?? "")} | ${fmt(off.t2i)} | ${fmt(off.i2t)} |`);
      console.log(rows.join("\n"));
    }
    mkdirSync(join(ROOT, ".artifacts"), { recursive: true });
    writeFileSync(join(ROOT, ".artifacts", `bench-ranking-${gallery}.json`), `${JSON.stringify(out, null, 2)}\n`);
    if (args["cpu-prof"]) {
      for (const [i, name] of ["ranking", "gateway"].entries()) {
        const child = children[i];
        if (!child) continue;
        await stopChild(child);
        const file = readdirSync(join(profDir, name)).find((f) => f.endsWith(".cpuprofile"));
        if (!file) continue;
        copyFileSync(join(profDir, name, file), join(ROOT, ".artifacts", `${name}-${gallery}.cpuprofile`));
        console.log(`\n${name} process CPU profile (whole run, self time by function):\n`);
        console.log(summarizeProfile(JSON.parse(readFileSync(join(profDir, name, file), "utf8")) as CpuProfile));
      }
    }
  } finally {
    cleanup();
  }
}

await main();
process.exit(0);
