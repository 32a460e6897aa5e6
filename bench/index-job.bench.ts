/**
 * What an index Job costs: the shard workers its pods run (`glimpse-ranking index-shard`, compiled),
 * over the full Flickr8K with the shipped model, as 1 pod and as 2 pods side by side — wall time,
 * images per second, time and CPU per 10k images, peak memory per pod. The chart's
 * `ranking.indexJob.resources` and services/ranking/README.md ("Index Jobs") quote these.
 *
 *   npm run bench:index -- --source ../shared/datasets/flickr8k [--shards 1,2] [--threads 1] [--rounds 1]
 *
 * The dataset is published once into .artifacts/bench-index (the pipeline CLI, filesystem store) and
 * kept; each round deletes the index and computes it again.
 */
import { existsSync, mkdirSync, realpathSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createObjectStore } from "@glimpse/objectstore";
import { readLatest } from "@glimpse/pipeline";
import { median, runCli } from "./stats.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const { values: a } = parseArgs({
  options: {
    source: { type: "string" },
    shards: { type: "string", default: "1,2" },
    threads: { type: "string", default: "1" },
    rounds: { type: "string", default: "1" },
    dir: { type: "string", default: join(ROOT, ".artifacts", "bench-index") },
  },
});
if (!a.source) throw new Error("--source <folder with Flickr8k_Dataset.zip and Flickr8k_text.zip> is required");
const source = realpathSync(resolve(a.source));
const dataDir = resolve(a.dir);
mkdirSync(dataDir, { recursive: true });
const env = { ...process.env, GLIMPSE_DATA_DIR: dataDir, GLIMPSE_LOG_LEVEL: "info", GLIMPSE_RANKING_INTRA_OP_THREADS: a.threads };
const store = createObjectStore({ kind: "fs", root: join(dataDir, "store"), bucket: "glimpse" });
await store.init();

const run = (args: string[]) => runCli(args, ROOT, env);

for (const f of ["packages/pipeline/dist/cli.js", "services/ranking/dist/cli.js"]) if (!existsSync(join(ROOT, f))) throw new Error(`${f} is missing: npm run build`);
if (!(await readLatest(store, "flickr8k"))) {
  console.log(`publishing ${source} into ${dataDir} (once)…`);
  await run(["packages/pipeline/dist/cli.js", "run", "--images-url", `file://${source}/Flickr8k_Dataset.zip`, "--captions-url", `file://${source}/Flickr8k_text.zip`, "--store", "fs", "--store-root", join(dataDir, "store"), "--progress", "json", "--clean"]);
}
const version = (await readLatest(store, "flickr8k"))!.pointer!.version;
const seeded = await run(["services/ranking/dist/cli.js", "seed"]);
const model = String((seeded.find((l) => "modelVersion" in l) ?? {})["modelVersion"] ?? "");

interface Result { shards: number; wall: number; images: number; cpu: number; rss: number }
const results: Result[] = [];
for (let round = 0; round < Number(a.rounds); round++) {
  for (const shards of a.shards.split(",").map(Number)) {
    for await (const o of store.list(`models/${model}/indexes/flickr8k/${version}/`)) await store.delete(o.key);
    const t0 = performance.now();
    const logs = await Promise.all(
      Array.from({ length: shards }, (_, i) => run(["services/ranking/dist/cli.js", "index-shard", "--model", model, "--dataset", "flickr8k", "--dataset-version", version, "--shards", String(shards), "--shard", String(i), "--job", `bench-${shards}`])),
    );
    const wall = (performance.now() - t0) / 1000;
    const done = logs.map((l) => l.find((x) => x["msg"] === "shard done")!);
    const r = { shards, wall, images: done.reduce((n, d) => n + Number(d["images"]), 0), cpu: done.reduce((n, d) => n + Number(d["cpu_s"]), 0), rss: Math.max(...done.map((d) => Number(d["max_rss_mib"]))) };
    results.push(r);
    console.log(`round ${round + 1}, ${shards} pod(s): ${r.wall.toFixed(1)} s wall, ${r.images} images, ${r.cpu.toFixed(0)} CPU-s, peak ${r.rss} MiB per pod`);
  }
}
console.log(`\nmodel ${model}, Flickr8K ${version}, ${a.threads} onnxruntime thread(s) per pod; medians of ${a.rounds} round(s)\n`);
console.log("| pods | wall | images/s | per 10k images | CPU per 10k images | peak memory per pod |");
console.log("|---:|---:|---:|---:|---:|---:|");
for (const shards of a.shards.split(",").map(Number)) {
  const rs = results.filter((r) => r.shards === shards);
  const wall = median(rs.map((r) => r.wall));
  const images = rs[0]!.images;
  const cpu = median(rs.map((r) => r.cpu));
  console.log(`| ${shards} | ${wall.toFixed(0)} s | ${(images / wall).toFixed(1)} | ${((wall * 10_000) / images / 60).toFixed(1)} min | ${((cpu * 10_000) / images / 60).toFixed(1)} CPU-min | ${Math.max(...rs.map((r) => r.rss))} MiB |`);
}
