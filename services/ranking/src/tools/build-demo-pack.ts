#!/usr/bin/env -S npx tsx --conditions=source
/**
 * Regenerates the demo pack (`demo/`) from the shared Flickr8K archives and a model export:
 *
 *   npx tsx --conditions=source services/ranking/src/tools/build-demo-pack.ts \
 *     --flickr8k ../shared/datasets/flickr8k --export model/runs/<name>/export [--out demo] [--images 200] [--max-kb 10]
 *
 * Writes demo/images/<id>.jpg (TEST-split images, 224×224 JPEG re-encoded for the web, at
 * most --max-kb each), demo/captions.json, demo/queries.json (kept if present),
 * demo/model/ (the export: ONNX models, vocab, preprocessing, metrics, model card, golden
 * vectors, checksums.json) and demo/index/ (the demo gallery's index for that model, so the
 * embedded default serves at once). ATTRIBUTION.md and README.md are written by hand.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { createObjectStore } from "@glimpse/objectstore";
import { parseSplitList, parseTokenFile } from "@glimpse/pipeline";
import sharp from "sharp";
import { buildIndex } from "../index/build.js";
import { readZipEntries } from "./zip.js";
import { indexPrefix } from "../index/store.js";
import { LoadedModel } from "../model/model.js";
import { fetchModel } from "../registry.js";
import { DEMO_DATASET, DEFAULT_DEMO_DIR, readDemoModel, seedDemo } from "../seed.js";

const { values: args } = parseArgs({
  options: {
    flickr8k: { type: "string", default: resolve(DEFAULT_DEMO_DIR, "../../shared/datasets/flickr8k") },
    export: { type: "string" },
    out: { type: "string", default: DEFAULT_DEMO_DIR },
    images: { type: "string", default: "200" },
    "max-kb": { type: "string", default: "10" },
  },
});

/** The smallest-quality-first JPEG under the size budget (224×224, metadata stripped). */
async function webJpeg(input: Buffer, maxBytes: number): Promise<Buffer> {
  let best: Buffer | undefined;
  for (const quality of [80, 75, 70, 65, 60, 55, 50, 45, 40]) {
    const out = await sharp(input).rotate().resize(224, 224, { fit: "fill", kernel: "lanczos3" }).jpeg({ quality, mozjpeg: true, chromaSubsampling: "4:2:0" }).toBuffer();
    best = out;
    if (out.length <= maxBytes) break;
  }
  return best!;
}

async function main(): Promise<void> {
  if (!args.export) throw new Error("--export <model export folder> is required");
  const out = resolve(args.out);
  const exportDir = resolve(args.export);
  const n = Number(args.images);
  const maxBytes = Number(args["max-kb"]) * 1024;
  const textZip = join(resolve(args.flickr8k), "Flickr8k_text.zip");
  const imageZip = join(resolve(args.flickr8k), "Flickr8k_Dataset.zip");

  // ---- captions and the test split ---------------------------------------------------------
  const text = await readZipEntries(textZip, (f) => /Flickr8k\.token\.txt$|Flickr_8k\.testImages\.txt$/.test(f));
  const token = [...text].find(([k]) => k.endsWith("Flickr8k.token.txt"))![1].toString("utf8");
  const testList = [...text].find(([k]) => k.endsWith("Flickr_8k.testImages.txt"))![1].toString("utf8");
  const { captions } = parseTokenFile(token);
  const test = [...new Set(parseSplitList(testList))].filter((id) => (captions.get(id)?.length ?? 0) > 0).sort();
  const step = test.length / n;
  const chosen = Array.from({ length: Math.min(n, test.length) }, (_, i) => test[Math.floor(i * step)]!);
  const chosenSet = new Set(chosen);

  // ---- images -------------------------------------------------------------------------------
  const imgs = await readZipEntries(imageZip, (f) => {
    const m = /([^/]+)\.jpg$/i.exec(f);
    return m !== null && !f.includes("__MACOSX") && chosenSet.has(m[1]!);
  });
  rmSync(join(out, "images"), { recursive: true, force: true });
  mkdirSync(join(out, "images"), { recursive: true });
  let bytes = 0;
  const caps: Record<string, string[]> = {};
  for (const [name, data] of imgs) {
    const id = /([^/]+)\.jpg$/i.exec(name)![1]!;
    const jpg = await webJpeg(data, maxBytes);
    writeFileSync(join(out, "images", `${id}.jpg`), jpg);
    bytes += jpg.length;
    caps[id] = captions.get(id)!;
  }
  const sorted = Object.fromEntries(Object.keys(caps).sort().map((k) => [k, caps[k]!]));
  writeFileSync(join(out, "captions.json"), `${JSON.stringify(sorted, null, 1)}\n`);
  console.log(`images: ${imgs.size} (${(bytes / 1024 / 1024).toFixed(2)} MiB, largest budget ${maxBytes} bytes)`);

  if (!existsSync(join(out, "queries.json"))) {
    writeFileSync(join(out, "queries.json"), `${JSON.stringify(["a dog playing in the snow", "children playing on the beach", "a man riding a bike"], null, 1)}\n`);
  }

  // ---- model --------------------------------------------------------------------------------
  const sums = JSON.parse(readFileSync(join(exportDir, "checksums.json"), "utf8")) as Record<string, string>;
  rmSync(join(out, "model"), { recursive: true, force: true });
  for (const f of [...Object.keys(sums), "checksums.json"]) {
    mkdirSync(join(out, "model", f, ".."), { recursive: true });
    copyFileSync(join(exportDir, f), join(out, "model", f));
  }
  const model = readDemoModel(out)!;
  console.log(`model: ${model.version}`);

  // ---- index: seed a scratch store, build, copy the files out --------------------------------
  const scratch = await mkdtemp(join(tmpdir(), "glimpse-demo-pack-"));
  try {
    rmSync(join(out, "index"), { recursive: true, force: true });
    const store = createObjectStore({ kind: "fs", root: scratch, bucket: "glimpse" });
    const seeded = await seedDemo(store, out);
    const fetched = await fetchModel(store, model.version);
    const loaded = await LoadedModel.load(model.version, fetched.files, {});
    const t0 = performance.now();
    const r = await buildIndex({ store, model: loaded, dataset: DEMO_DATASET, datasetVersion: seeded.datasetVersion });
    await loaded.release();
    mkdirSync(join(out, "index"), { recursive: true });
    const prefix = indexPrefix(model.version, DEMO_DATASET, seeded.datasetVersion!);
    for await (const o of store.list(prefix)) writeFileSync(join(out, "index", o.key.slice(prefix.length)), await store.getBuffer(o.key));
    console.log(`index: ${r.index.images} images, ${r.index.captions} captions in ${((performance.now() - t0) / 1000).toFixed(1)} s (dataset version ${seeded.datasetVersion})`);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
