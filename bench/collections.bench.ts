/**
 * What a collection costs: a synthetic collection of Flickr8K photos re-encoded at phone sizes
 * (3000–4000 px JPEGs with EXIF dates, camera models and orientations), ingested from a folder
 * (the Data service's sync: list, read, decode, normalise, thumbnail, hash, publish), then embedded
 * (the index worker Ranking runs, `glimpse-ranking index-shard`, compiled); then a re-sync after 1 %
 * of the photos changed (new bytes) or were added; then SearchCollection latency through a started
 * Ranking server (Connect, in-process client: the server's own work, not the network's).
 *
 *   npm run bench:collections -- --source ../shared/datasets/flickr8k [--photos 10000] [--threads 1]
 *
 * Photos are generated once into .artifacts/bench-collections/photos and kept. Printed: wall and CPU
 * per step, photos per second per core, the image encoder's share of the full ingest's CPU, the
 * re-sync's cost as a share of the full ingest's, search p50/p99.
 */
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ranking } from "@glimpse/api";
import { COLLECTION_SCHEMA, readCollectionVersion, type CollectionRecord } from "@glimpse/layout";
import { createObjectStore } from "@glimpse/objectstore";
import { SourceAllowList, syncCollection } from "@glimpse/pipeline";
import { testConfig } from "@glimpse/runtime/testing";
import sharp from "sharp";
import { extractZip } from "../packages/pipeline/src/extract.js";
import { build as buildRanking } from "../services/ranking/src/server.js";
import { median, percentile, runCli } from "./stats.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const { values: a } = parseArgs({
  options: {
    source: { type: "string" },
    photos: { type: "string", default: "10000" },
    threads: { type: "string", default: "1" },
    searches: { type: "string", default: "200" },
    dir: { type: "string", default: join(ROOT, ".artifacts", "bench-collections") },
    // make the photos and stop (they take long; the measured run is best on a quiet machine)
    prepare: { type: "boolean", default: false },
  },
});
if (!a.source) throw new Error("--source <folder with Flickr8k_Dataset.zip> is required");
const source = realpathSync(resolve(a.source));
const N = Number(a.photos);
const dir = resolve(a.dir);
const photosDir = join(dir, `photos-${N}`);
const ID = "bench";
for (const f of ["services/ranking/dist/cli.js"]) if (!existsSync(join(ROOT, f))) throw new Error(`${f} is missing: npm run build`);

const cpuSeconds = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1e6;

// ---- 1. the photos (once) -------------------------------------------------------------------------
async function makePhotos(): Promise<void> {
  if (existsSync(join(photosDir, ".done"))) return;
  const flickr = join(dir, "flickr8k");
  if (!existsSync(join(flickr, ".done"))) {
    console.log(`extracting ${source}/Flickr8k_Dataset.zip (once)…`);
    await extractZip(join(source, "Flickr8k_Dataset.zip"), flickr);
    writeFileSync(join(flickr, ".done"), "");
  }
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith(".jpg")) files.push(join(d, e.name));
    }
  };
  walk(flickr);
  files.sort();
  mkdirSync(photosDir, { recursive: true });
  // photo i is the same at every --photos: a smaller set already made gives its photos (hard links)
  const smaller = readdirSync(dir)
    .map((d) => /^photos-(\d+)$/.exec(d))
    .filter((m): m is RegExpExecArray => m !== null && Number(m[1]) < N && existsSync(join(dir, m[0], ".done")))
    .sort((x, y) => Number(y[1]) - Number(x[1]))[0];
  let reused = 0;
  if (smaller) for (; reused < Number(smaller[1]); reused++) {
    const name = `IMG_${String(reused).padStart(5, "0")}.jpg`;
    if (!existsSync(join(photosDir, name))) linkSync(join(dir, smaller[0], name), join(photosDir, name));
  }
  console.log(`making ${N - reused} phone-size photos from ${files.length} Flickr8K images (once; ${reused} from ${smaller?.[0] ?? "none"})…`);
  const cameras = ["Pixel 9", "iPhone 15 Pro", "SM-S928B", "X-T5"];
  let next = reused;
  await Promise.all(
    Array.from({ length: 2 }, async () => {
      while (next < N) {
        const i = next++;
        const long = 3000 + ((i * 37) % 1001);
        const [w, h] = i % 3 === 0 ? [Math.round((long * 3) / 4), long] : [long, Math.round((long * 3) / 4)];
        // photos past the Flickr8K count reuse an image, at another size: other bytes, another photo
        const bytes = await sharp(files[i % files.length]!)
          .resize(w, h, { fit: "fill" })
          .jpeg({ quality: 88 })
          .withExif({ IFD0: { Model: cameras[i % cameras.length]! }, IFD2: { DateTimeOriginal: `2024:${String((i % 12) + 1).padStart(2, "0")}:15 12:00:00` } })
          .toBuffer();
        writeFileSync(join(photosDir, `IMG_${String(i).padStart(5, "0")}.jpg`), bytes);
        if (i % 500 === 0) console.log(`  ${i}/${N}`);
      }
    }),
  );
  writeFileSync(join(photosDir, ".done"), "");
}
await makePhotos();
if (a.prepare) process.exit(0);

// ---- 2. ingest, embed, re-sync ----------------------------------------------------------------------
const dataDir = join(dir, `run-${N}`);
rmSync(dataDir, { recursive: true, force: true });
const store = createObjectStore({ kind: "fs", root: join(dataDir, "store"), bucket: "glimpse" });
await store.init();
const allow = SourceAllowList.parse(["file:"]);
const record: CollectionRecord = { schema: COLLECTION_SCHEMA, id: ID, display_name: ID, source: { kind: "folder", path: photosDir }, watch: false, create_time: new Date().toISOString() };
const env = { ...process.env, GLIMPSE_DATA_DIR: dataDir, GLIMPSE_LOG_LEVEL: "info", GLIMPSE_RANKING_INTRA_OP_THREADS: a.threads };

const run = (args: string[]) => runCli(args, ROOT, env);

const seeded = await run(["services/ranking/dist/cli.js", "seed"]);
const model = String((seeded.find((l) => "modelVersion" in l) ?? {})["modelVersion"] ?? "");

interface Step { wall: number; cpu: number; photos: number }
async function ingest(): Promise<Step & { version: string; read: number; decoded: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await syncCollection({ store, allow, record });
  return { wall: (performance.now() - t0) / 1000, cpu: cpuSeconds(process.cpuUsage(c0)), photos: r.read, version: r.version, read: r.read, decoded: r.decoded };
}
async function embed(version: string): Promise<Step> {
  const t0 = performance.now();
  const logs = await run(["services/ranking/dist/cli.js", "index-shard", "--model", model, "--dataset", `collections/${ID}`, "--dataset-version", version, "--shards", "1", "--shard", "0"]);
  const done = logs.find((l) => l["msg"] === "shard done")!;
  return { wall: (performance.now() - t0) / 1000, cpu: Number(done["cpu_s"]), photos: Number(done["images"] ?? 0) };
}

console.log(`\ningesting ${N} photos (${photosDir})…`);
const full = await ingest();
console.log(`  ${full.wall.toFixed(1)} s wall, ${full.cpu.toFixed(1)} CPU-s, ${full.decoded} decoded`);
const fullEmbed = await embed(full.version);
console.log(`embedding: ${fullEmbed.wall.toFixed(1)} s wall, ${fullEmbed.cpu.toFixed(1)} CPU-s, ${fullEmbed.photos} photos`);

// 1 %: half changed in place (new bytes), half new files
const k = Math.max(2, Math.round(N / 100));
const names = readdirSync(photosDir).filter((f) => f.endsWith(".jpg")).sort();
const changed: { path: string; original: Buffer }[] = [];
for (let i = 0; i < k / 2; i++) {
  const path = join(photosDir, names[(i * 97) % names.length]!);
  const original = readFileSync(path);
  writeFileSync(path, await sharp(original).modulate({ brightness: 1.05 }).jpeg({ quality: 88 }).toBuffer());
  changed.push({ path, original });
}
const added: string[] = [];
for (let i = 0; i < k / 2; i++) {
  const f = join(photosDir, `NEW_${i}.jpg`);
  writeFileSync(f, await sharp(join(photosDir, names[i]!)).flip().jpeg({ quality: 88 }).toBuffer());
  added.push(f);
}
const again = await ingest();
const againEmbed = await embed(again.version);
// put the photos back as they were, for the next run
for (const c of changed) writeFileSync(c.path, c.original);
for (const f of added) rmSync(f);

// ---- 3. search --------------------------------------------------------------------------------------
const cfg = testConfig({ GLIMPSE_DATA_DIR: dataDir, GLIMPSE_RANKING_INTRA_OP_THREADS: a.threads, GLIMPSE_LOG_LEVEL: "warn" });
const server = await buildRanking(cfg, { port: 0, store });
const client = createClient(ranking.RankingService, createConnectTransport({ baseUrl: server.url, httpVersion: "2", useBinaryFormat: true }));
const served = (await readCollectionVersion(store, ID))!;
for (let i = 0; i < 600; i++) {
  try {
    await client.searchCollection({ name: `collections/${ID}`, query: { case: "text", value: "warm up" } });
    break;
  } catch {
    await new Promise((r) => setTimeout(r, 500));
  }
}
const queries = ["a dog running on the grass", "two children on a beach", "a man riding a bicycle", "people walking in a city street", "a black dog in the snow"];
async function latencies(q: (i: number) => Parameters<typeof client.searchCollection>[0]): Promise<{ p50: number; p99: number }> {
  const ms: number[] = [];
  for (let i = 0; i < Number(a.searches); i++) {
    const t0 = performance.now();
    await client.searchCollection(q(i));
    ms.push(performance.now() - t0);
  }
  ms.sort((x, y) => x - y);
  return { p50: percentile(ms, 50), p99: percentile(ms, 99) };
}
const text = await latencies((i) => ({ name: `collections/${ID}`, query: { case: "text", value: queries[i % queries.length]! }, topK: 10 }));
const like = await latencies((i) => ({ name: `collections/${ID}`, query: { case: "photoId", value: served.manifest.photos[(i * 31) % served.manifest.photos.length]!.photo_id }, topK: 10 }));
const filtered = await latencies((i) => ({ name: `collections/${ID}`, query: { case: "text", value: queries[i % queries.length]! }, topK: 10, filter: { cameraModel: "Pixel 9" } }));
await server.close(100);

const cores = 2;
const fullCpu = full.cpu + fullEmbed.cpu;
console.log(`\nmodel ${model}, ${N} photos of 3000–4000 px, ${a.threads} onnxruntime thread(s); this machine: ${cores} cores\n`);
console.log("| step | wall | CPU | photos/s | photos/s per core |");
console.log("|---|---:|---:|---:|---:|");
const row = (name: string, s: Step, n: number) => console.log(`| ${name} | ${s.wall.toFixed(1)} s | ${s.cpu.toFixed(1)} CPU-s | ${(n / s.wall).toFixed(1)} | ${(n / s.cpu).toFixed(1)} |`);
row("ingest (list, read, decode, normalise, thumbnail, hash, publish)", full, N);
row("embed (the index worker: image encoder, assembly)", fullEmbed, N);
row("full (ingest + embed)", { wall: full.wall + fullEmbed.wall, cpu: fullCpu, photos: N }, N);
console.log(`\nimage encoder's share of the full ingest's CPU: ${((100 * fullEmbed.cpu) / fullCpu).toFixed(0)} %`);
const resync = again.wall + againEmbed.wall;
console.log(`re-sync after ${k} changed or new photos (${((100 * k) / N).toFixed(1)} %): read ${again.read}, decoded ${again.decoded}, embedded ${againEmbed.photos}; ${resync.toFixed(1)} s wall = ${((100 * resync) / (full.wall + fullEmbed.wall)).toFixed(1)} % of the full ingest's (target ≤ 3 %)`);
console.log(`\nSearchCollection over ${served.manifest.photos.length} photos, ${a.searches} sequential calls each: text p50 ${text.p50.toFixed(2)} ms p99 ${text.p99.toFixed(2)} ms; more-like-this p50 ${like.p50.toFixed(2)} ms p99 ${like.p99.toFixed(2)} ms; text + camera filter p50 ${filtered.p50.toFixed(2)} ms p99 ${filtered.p99.toFixed(2)} ms (median ${median([text.p50, like.p50]).toFixed(2)})`);
await store.close();
