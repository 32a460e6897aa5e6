/**
 * EXIF orientation (issue #23): a photo stored by a camera under any of the eight orientations,
 * ingested as a collection ingests it (the pipeline's ingestPhoto: orientation applied, then
 * normalised), embeds as the upright photo does. The reference is orientation 1 — the upright
 * pixels stored the same way (orientedVariants' JPEG) — since that encoding alone moves the
 * embedding by about half the bound (int8 image encoders, #24, whose activation levels the
 * JPEG's noise can flip: EfficientNet-Lite1 with two views, #25, 1.5e-3 to 2.7e-3 on this photo,
 * up to 5.8e-3 on others; Lite0 1.2e-3 to 1.5e-3; ≤ 7.1e-4 with float32 arithmetic); an
 * orientation left unapplied moves it far more (0.48 to 0.81 on four demo photos; > 1e-2 checked below).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ingestPhoto } from "@glimpse/pipeline";
import { orientedVariants } from "@glimpse/pipeline/testing";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoadedModel, type ModelFiles } from "../model/model.js";
import { DEFAULT_DEMO_DIR, readDemoModel } from "../seed.js";
import { demoImageIds } from "../testing/collections.js";

describe("EXIF orientation", () => {
  let model: LoadedModel;
  beforeAll(async () => {
    const demo = readDemoModel(DEFAULT_DEMO_DIR)!;
    model = await LoadedModel.load(demo.version, Object.fromEntries(demo.files) as unknown as ModelFiles, { executionProvider: "cpu" });
  }, 60_000);
  afterAll(async () => {
    await model?.release();
  });

  const embed = async (bytes: Buffer) => {
    const r = await ingestPhoto(bytes);
    if (!r.ok) throw new Error(`${r.reason}: ${r.message}`);
    return { ...r, embedding: (await model.embedImage(r.normalized)).embedding };
  };
  const cosine = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i]!, 0);

  it("every orientation's normalised copy embeds as the upright photo's, within 5e-3 cosine", { timeout: 120_000 }, async () => {
    // a camera-sized (4:3) photo from a Flickr8K test image
    const upright = await sharp(readFileSync(join(DEFAULT_DEMO_DIR, "images", `${demoImageIds()[3]}.jpg`))).resize(1344, 1008).png().toBuffer();
    const variants = await orientedVariants(upright);
    expect(variants.map((v) => v.orientation)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const ref = await embed(variants[0]!.bytes);
    for (const v of variants) {
      const e = await embed(v.bytes);
      expect([e.width, e.height], `orientation ${v.orientation}`).toEqual([1344, 1008]);
      expect(1 - cosine(ref.embedding, e.embedding), `orientation ${v.orientation}`).toBeLessThan(5e-3);
    }
    // the bound means something: orientation 6's stored pixels, their tag dropped, are another image to the model
    const untagged = await sharp(variants[5]!.bytes).jpeg({ quality: 95 }).toBuffer();
    expect(1 - cosine(ref.embedding, (await embed(untagged)).embedding)).toBeGreaterThan(1e-2);
  });
});
