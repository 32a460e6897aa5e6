/**
 * Grouping queries by length changes no embedding: the text encoder ignores padding (the export
 * checks a batch against one-by-one runs to 1e-5), so a mixed-length batch split into runs by
 * length gives each query what it gets alone. Real onnxruntime, the demo pack's model.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HASHED_FILES } from "../registry.js";
import { DEFAULT_DEMO_DIR } from "../seed.js";
import { maxAbsDiff } from "./golden.js";
import { LoadedModel, type ModelFiles } from "./model.js";

const DIR = join(DEFAULT_DEMO_DIR, "model");
const TEXTS = [
  "a dog",
  "two children play on a sandy beach near the water",
  "dog",
  "a man in a red jacket rides a bicycle down a steep dirt trail in the mountains while another man in a blue helmet watches him from behind a wooden fence",
  "a girl",
  "a brown dog runs through the tall grass",
  "people",
  "a black and white dog jumps over a log in a snowy forest while a woman throws a stick",
];

describe("text queries grouped by length", () => {
  let model: LoadedModel;
  let alone: Float32Array[];
  beforeAll(async () => {
    const files = Object.fromEntries(HASHED_FILES.map((f) => [f, readFileSync(join(DIR, f))])) as unknown as ModelFiles;
    model = await LoadedModel.load("m-test", files, { intraOpThreads: 1, cacheSize: 0 });
    // each one alone: one row, no padding
    alone = [];
    for (const t of TEXTS) alone.push(await model.encoders.encodeTokens(model.tokenizer.batch([t])));
  });
  afterAll(() => model?.release());

  it("answers a mixed-length burst in several runs with the embeddings each query gets alone", async () => {
    const lengths = TEXTS.map((t) => model.tokenizer.encode(t).length);
    expect(Math.max(...lengths)).toBeGreaterThanOrEqual(30);
    expect(Math.min(...lengths)).toBeLessThanOrEqual(4);
    const before = { ...model.textBatcher.stats };
    // submitted in one tick: gathered into one batch
    const out = await Promise.all(TEXTS.map((t) => model.embedText(t)));
    const st = model.textBatcher.stats;
    expect(st.batches - before.batches).toBe(1);
    expect(st.items - before.items).toBe(TEXTS.length);
    // run as more than one run (short and long apart), fewer than one per query
    const runs = st.runs - before.runs;
    expect(runs).toBeGreaterThan(1);
    expect(runs).toBeLessThan(TEXTS.length);
    out.forEach((e, i) => expect(maxAbsDiff(e, alone[i]!), TEXTS[i]).toBeLessThanOrEqual(1e-5));
  });

  it("embeds many texts (index builds) as grouped runs with the same embeddings, and a fully padded run agrees too", async () => {
    const many = await model.embedTexts(TEXTS, 3);
    const d = model.dim;
    TEXTS.forEach((t, i) => expect(maxAbsDiff(many.subarray(i * d, (i + 1) * d), alone[i]!), t).toBeLessThanOrEqual(1e-5));
    const padded = await model.encoders.encodeTokens(model.tokenizer.batch(TEXTS));
    TEXTS.forEach((t, i) => expect(maxAbsDiff(padded.subarray(i * d, (i + 1) * d), alone[i]!), t).toBeLessThanOrEqual(1e-5));
  });
});
