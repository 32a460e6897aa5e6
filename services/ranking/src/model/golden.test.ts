/**
 * The serving stack reproduces the trainer's golden vectors: token ids equal, pixels within
 * 1e-6, text and image embeddings within 1e-4 (onnxruntime-node vs onnxruntime in Python).
 * Runs against the demo pack's model; GLIMPSE_GOLDEN_MODEL_DIR=<export dir> checks another.
 *
 * The int8 kernels (model/glimpse_model/compress.py) quantise activations at run time: a float
 * rounding difference between two onnxruntime builds (another graph fusion) can move one value by
 * a quantisation level, and the embedding by ~1e-3. So the exporter and the server run the same
 * onnxruntime version, and the tolerance stays 1e-4.
 */
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { HASHED_FILES, versionOf } from "../registry.js";
import { DEFAULT_DEMO_DIR } from "../seed.js";
import { GoldenMismatchError, maxAbsDiff, verifyGolden, type Golden } from "./golden.js";
import { LoadedModel, type ModelFiles } from "./model.js";
import { QUERYBANK_FILES } from "./querybank.js";

const DIR = resolve(process.env["GLIMPSE_GOLDEN_MODEL_DIR"] ?? join(DEFAULT_DEMO_DIR, "model"));

const ROOT = resolve(import.meta.dirname, "../../../..");

it("the exporter (model/pyproject.toml) and the server (onnxruntime-node) run the same onnxruntime version", () => {
  const pinned = /"onnxruntime==([\d.]+)"/.exec(readFileSync(join(ROOT, "model", "pyproject.toml"), "utf8"))?.[1];
  const served = (JSON.parse(readFileSync(join(ROOT, "node_modules", "onnxruntime-node", "package.json"), "utf8")) as { version: string }).version;
  expect(pinned).toBe(served);
});

describe(`golden vectors of ${DIR}`, () => {
  // a missing fixture fails loudly (readFileSync below) instead of skipping the suite
  if (!existsSync(join(DIR, "golden.json"))) throw new Error(`${DIR}/golden.json is missing`);
  const names = [...HASHED_FILES, ...QUERYBANK_FILES.filter((f) => existsSync(join(DIR, f)))];
  const files = Object.fromEntries(names.map((f) => [f, readFileSync(join(DIR, f))])) as unknown as ModelFiles;
  const golden = JSON.parse(readFileSync(join(DIR, "golden.json"), "utf8")) as Golden;
  const png = async (f: string) => readFileSync(join(DIR, f));

  it("tokens, pixels and embeddings match within the stated tolerances, in one batch and one by one", async () => {
    const model = await LoadedModel.load(versionOf(files as unknown as Record<string, Uint8Array>), files, { intraOpThreads: 1 });
    try {
      const r = await verifyGolden(model, golden, png);
      expect(r.captions).toBe(golden.captions.length);
      expect(r.images).toBe(golden.images.length);
      expect(r.maxTextDiff).toBeLessThanOrEqual(1e-4);
      expect(r.maxImageDiff).toBeLessThanOrEqual(1e-4);
      // Alone (no padding, the micro-batcher's path) the same embeddings.
      for (const c of golden.captions) expect(maxAbsDiff(await model.embedText(c.text), c.embedding)).toBeLessThanOrEqual(1e-4);
      const one = await model.embedImage(await png(golden.images[0]!.file));
      expect(maxAbsDiff(one.embedding, golden.images[0]!.embedding)).toBeLessThanOrEqual(1e-4);
      // The golden score matrix follows.
      const scores = (golden as unknown as { scores?: { matrix: number[][] } }).scores?.matrix;
      if (scores) expect(Math.abs([...one.embedding].reduce((s, v, i) => s + v * golden.captions[0]!.embedding[i]!, 0) - scores[0]![0]!)).toBeLessThan(1e-4);
      // A tampered vector is caught.
      const bad = structuredClone(golden);
      bad.captions[0]!.embedding[3]! += 0.001;
      await expect(verifyGolden(model, bad, png)).rejects.toBeInstanceOf(GoldenMismatchError);
    } finally {
      await model.release();
    }
  });
});
