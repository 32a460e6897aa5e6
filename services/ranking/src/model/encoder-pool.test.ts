/**
 * The encoders in worker threads give exactly the embeddings the main thread's sessions give (same
 * onnxruntime, one intra-op thread each), spread concurrent runs over their threads, fail a load
 * with the worker's reason, and end their threads on release. Real onnxruntime, the demo pack's model.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HASHED_FILES } from "../registry.js";
import { DEFAULT_DEMO_DIR } from "../seed.js";
import { EncoderPool } from "./encoder-pool.js";
import { LoadedModel, type ModelFiles } from "./model.js";

const DIR = join(DEFAULT_DEMO_DIR, "model");
const TEXTS = ["a dog runs on the grass", "two children play on a sandy beach near the water", "people", "a man rides a bike down a dirt trail"];

describe("encoders in worker threads", () => {
  let files: ModelFiles;
  let inProcess: LoadedModel;
  let pooled: LoadedModel;
  beforeAll(async () => {
    files = Object.fromEntries(HASHED_FILES.map((f) => [f, readFileSync(join(DIR, f))])) as unknown as ModelFiles;
    inProcess = await LoadedModel.load("m-test", files, { intraOpThreads: 1, cacheSize: 0 });
    pooled = await LoadedModel.load("m-test", files, { intraOpThreads: 1, cacheSize: 0, encoderWorkers: 2 });
  }, 120_000);
  afterAll(async () => {
    await inProcess?.release();
    await pooled?.release();
  });

  it("embeds texts and images exactly as the main thread's sessions do, concurrent runs over both threads", async () => {
    expect(pooled.encoders).toBeInstanceOf(EncoderPool);
    expect(pooled.dim).toBe(inProcess.dim);
    const want = await Promise.all(TEXTS.map((t) => inProcess.embedText(t)));
    // a burst: the batcher starts runs on both threads at once
    const got = await Promise.all([...TEXTS, ...TEXTS].map((t) => pooled.embedText(t)));
    got.forEach((g, i) => expect([...g]).toEqual([...want[i % TEXTS.length]!]));
    expect(pooled.textBatcher.stats.runs).toBeGreaterThanOrEqual(2);

    const jpeg = readFileSync(join(DEFAULT_DEMO_DIR, "images", readdirSync(join(DEFAULT_DEMO_DIR, "images")).find((f) => f.endsWith(".jpg"))!));
    const [a, b] = await Promise.all([inProcess.embedImage(jpeg), pooled.embedImage(jpeg)]);
    expect([...b.embedding]).toEqual([...a.embedding]);
  });

  it("fails a load with the worker's reason and leaves no thread behind", async () => {
    const broken = { ...files, "text_encoder.onnx": Buffer.from("not an onnx file") } as ModelFiles;
    await expect(LoadedModel.load("m-broken", broken, { encoderWorkers: 2 })).rejects.toThrow(/protobuf|parse|load|onnx/i);
  });

  it("refuses runs after release", async () => {
    const m = await LoadedModel.load("m-test", files, { intraOpThreads: 1, cacheSize: 0, encoderWorkers: 1 });
    await m.release();
    await expect(m.encoders.encodeTokens(m.tokenizer.batch(["a dog"]))).rejects.toThrow(/released/);
  });
});
