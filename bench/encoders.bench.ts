/**
 * Per-query encoder latency of a model export in onnxruntime-node on one core (`npm run bench:encoders`):
 *
 *   npx tsx --conditions=source bench/encoders.bench.ts [--model demo/model] [--rounds 5] [--queries 200] [--images 20]
 *
 * One text at a time (demo/queries.json, tokenized as served) and one image at a time (the
 * export's golden PNGs, already preprocessed), both sessions with one intra-op thread, rounds
 * interleaved; prints the medians over rounds of each round's mean, against model/README.md's
 * serving budget (text ≤ 6 ms, image ≤ 25 ms per query).
 */
import { readFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";
import { LoadedModel, type ModelFiles } from "../services/ranking/src/model/model.js";
import { readDemoModel } from "../services/ranking/src/seed.js";

const ROOT = resolve(import.meta.dirname, "..");
const { values: args } = parseArgs({
  options: {
    model: { type: "string", default: join(ROOT, "demo", "model") },
    rounds: { type: "string", default: "5" },
    queries: { type: "string", default: "200" },
    images: { type: "string", default: "20" },
  },
});

const BUDGET_MS = { text: 6, image: 25 };
const dir = resolve(args.model);
// every file checked against its checksums.json, the version recomputed
const exported = readDemoModel(dirname(dir), basename(dir));
if (!exported) throw new Error(`${dir}: no checksums.json (not a model export)`);
const model = await LoadedModel.load(exported.version, Object.fromEntries(exported.files) as unknown as ModelFiles, {
  intraOpThreads: 1, maxBatch: 1, cacheSize: 0,
});
const golden = JSON.parse(readFileSync(join(dir, "golden.json"), "utf8")) as { images: { file: string }[] };
const texts = JSON.parse(readFileSync(join(ROOT, "demo", "queries.json"), "utf8")) as string[];
// distinct texts (numbered after the demo's own), so no query repeats a cached one
const queries = Array.from({ length: Number(args.queries) }, (_, i) => `${texts[i % texts.length]!}${i >= texts.length ? ` ${i}` : ""}`);
const pixels = await Promise.all(golden.images.map((g) => model.preprocessor.fromEncoded(readFileSync(join(dir, g.file)))));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rounds = { text: [] as number[], image: [] as number[] };
for (const q of queries.slice(0, 5)) await model.embedText(q); // warm-up
await model.embedPixels([pixels[0]!]);
for (let r = 0; r < Number(args.rounds); r++) {
  let t = performance.now();
  for (const q of queries) await model.embedText(q);
  rounds.text.push((performance.now() - t) / queries.length);
  const n = Number(args.images);
  t = performance.now();
  for (let i = 0; i < n; i++) await model.embedPixels([pixels[i % pixels.length]!]);
  rounds.image.push((performance.now() - t) / n);
}
await model.release();

console.log(`model ${model.version} (${dir}), onnxruntime-node, 1 intra-op thread, batch 1, ${args.rounds} interleaved rounds`);
console.log("| encoder | median ms/query | rounds | budget | within |");
console.log("|---|---:|---|---:|---|");
for (const k of ["text", "image"] as const) {
  const m = median(rounds[k]);
  console.log(`| ${k} | ${m.toFixed(2)} | ${rounds[k].map((x) => x.toFixed(2)).join(" ")} | ${BUDGET_MS[k]} | ${m <= BUDGET_MS[k] ? "yes" : "NO"} |`);
}
