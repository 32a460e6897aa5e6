/**
 * Per-query encoder latency of model exports in onnxruntime-node (`npm run bench:encoders`):
 *
 *   npx tsx --conditions=source bench/encoders.bench.ts [--model demo/model[,other/export…]] [--threads 1[,2]]
 *                                  [--batch 1[,8]] [--rounds 5] [--queries 200] [--images 20]
 *
 * Texts (demo/queries.json, tokenized as served) and images (the export's golden PNGs, already
 * preprocessed) in batches of --batch, each (model, threads) pair a LoadedModel of its own, the
 * pairs interleaved within every round; prints the medians over rounds of each round's mean time
 * per query, against model/README.md's serving budget at one thread, batch 1 (text ≤ 2.5 ms,
 * image ≤ 15 ms per query: the int8 kernels' budget, #24). Also the CPU time per query, so a
 * thread count that only burns a second core shows.
 */
import { readFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";
import { LoadedModel, type ModelFiles } from "../services/ranking/src/model/model.js";
import type { DecodedPixels } from "../services/ranking/src/model/preprocess.js";
import { readDemoModel } from "../services/ranking/src/seed.js";

const ROOT = resolve(import.meta.dirname, "..");
const { values: args } = parseArgs({
  options: {
    model: { type: "string", default: join(ROOT, "demo", "model") },
    threads: { type: "string", default: "1" },
    batch: { type: "string", default: "1" },
    rounds: { type: "string", default: "5" },
    queries: { type: "string", default: "200" },
    images: { type: "string", default: "20" },
  },
});
const list = (s: string) => s.split(",").map((x) => x.trim()).filter(Boolean);

const BUDGET_MS = { text: 2.5, image: 15 };
const texts = JSON.parse(readFileSync(join(ROOT, "demo", "queries.json"), "utf8")) as string[];
// distinct texts (numbered after the demo's own), so no query repeats a cached one
const queries = Array.from({ length: Number(args.queries) }, (_, i) => `${texts[i % texts.length]!}${i >= texts.length ? ` ${i}` : ""}`);

interface Subject { label: string; model: LoadedModel; pixels: DecodedPixels[]; text: number[]; image: number[]; textCpu: number[]; imageCpu: number[] }
const subjects: Subject[] = [];
for (const m of list(args.model)) {
  const dir = resolve(m);
  // every file checked against its checksums.json, the version recomputed
  const exported = readDemoModel(dirname(dir), basename(dir));
  if (!exported) throw new Error(`${dir}: no checksums.json (not a model export)`);
  const golden = JSON.parse(readFileSync(join(dir, "golden.json"), "utf8")) as { images: { file: string }[] };
  for (const threads of list(args.threads).map(Number)) {
    const model = await LoadedModel.load(exported.version, Object.fromEntries(exported.files) as unknown as ModelFiles, {
      intraOpThreads: threads, maxBatch: 1, cacheSize: 0,
    });
    const pixels = await Promise.all(golden.images.map((g) => model.preprocessor.fromEncoded(readFileSync(join(dir, g.file)))));
    for (const q of queries.slice(0, 5)) await model.embedText(q); // warm-up
    await model.embedPixels([pixels[0]!]);
    subjects.push({ label: `${model.version} (${m}), ${threads} thread${threads > 1 ? "s" : ""}`, model, pixels, text: [], image: [], textCpu: [], imageCpu: [] });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const batches = list(args.batch).map(Number);
const rows: string[] = [];
for (const batch of batches) {
  for (const s of subjects) Object.assign(s, { text: [], image: [], textCpu: [], imageCpu: [] });
  for (let r = 0; r < Number(args.rounds); r++) {
    for (const s of subjects) {
      let t = performance.now();
      let c = cpuMs();
      for (let i = 0; i < queries.length; i += batch) await s.model.embedTexts(queries.slice(i, i + batch));
      s.text.push((performance.now() - t) / queries.length);
      s.textCpu.push((cpuMs() - c) / queries.length);
      const n = Number(args.images);
      t = performance.now();
      c = cpuMs();
      for (let i = 0; i < n; i += batch) await s.model.embedPixels(Array.from({ length: Math.min(batch, n - i) }, (_, k) => s.pixels[(i + k) % s.pixels.length]!));
      s.image.push((performance.now() - t) / n);
      s.imageCpu.push((cpuMs() - c) / n);
    }
  }
  for (const s of subjects) {
    for (const k of ["text", "image"] as const) {
      const m = median(s[k]);
      const budget = batch === 1 && s.label.endsWith(" 1 thread") ? (m <= BUDGET_MS[k] ? "yes" : "NO") : "";
      rows.push(`| ${s.label} | ${batch} | ${k} | ${m.toFixed(2)} | ${median(k === "text" ? s.textCpu : s.imageCpu).toFixed(2)} | ${s[k].map((x) => x.toFixed(2)).join(" ")} | ${budget} |`);
    }
  }
}
for (const s of subjects) await s.model.release();

console.log(`onnxruntime-node, ${args.rounds} interleaved rounds, ${queries.length} texts and ${args.images} images a round; budget at 1 thread, batch 1: text ${BUDGET_MS.text} ms, image ${BUDGET_MS.image} ms`);
console.log("| model, threads | batch | encoder | median ms/query | CPU ms/query | rounds | within budget |");
console.log("|---|---:|---|---:|---:|---|---|");
for (const r of rows) console.log(r);
