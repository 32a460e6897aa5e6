import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { DEFAULT_DEMO_DIR } from "../seed.js";
import { pngBomb, testImage } from "../testing/images.js";
import type { Golden } from "./golden.js";
import { ImageInputError, Preprocessor, type PreprocessSpec } from "./preprocess.js";

const SPEC: PreprocessSpec = {
  schema: "glimpse.preprocess/v1",
  width: 224,
  height: 224,
  resize: "fill",
  resize_kernel: "bilinear",
  channel_order: "RGB",
  layout: "NCHW",
  dtype: "float32",
  scale: 1 / 255,
  mean: [0.5, 0.5, 0.5],
  std: [0.5, 0.5, 0.5],
  input_name: "pixels",
};

async function reason(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ImageInputError) return err.reason;
    throw err;
  }
  return "ok";
}

describe("Preprocessor (preprocess.json spec)", () => {
  const pre = new Preprocessor(SPEC);

  it("follows the formula in float32, NCHW, without resizing an image of the target size", async () => {
    const png = await testImage(224, 224, "png");
    const { data: rgb } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    const px = await pre.fromEncoded(png);
    expect(px.data.length).toBe(3 * 224 * 224);
    const f = Math.fround;
    for (const [c, y, x] of [[0, 0, 0], [1, 10, 20], [2, 223, 223], [0, 100, 7]] as const) {
      const p = rgb[(y * 224 + x) * 3 + c]!;
      expect(px.data[c * 224 * 224 + y * 224 + x]).toBe(f(f(f(p / 255) - f(0.5)) / f(0.5)));
    }
    expect(px.width).toBe(224);
  });

  it("squashes other sizes to 224×224 ('fill') and reports the upload's size; takes JPEG, PNG and WebP", async () => {
    for (const fmt of ["jpeg", "png", "webp"] as const) {
      const px = await pre.fromEncoded(await testImage(500, 375, fmt));
      expect([px.width, px.height, px.format]).toEqual([500, 375, fmt]);
      expect(px.data.length).toBe(3 * 224 * 224);
      expect(px.data.every((v) => v >= -1 && v <= 1)).toBe(true);
    }
  });

  it("handles greyscale and alpha (alpha dropped, not flattened)", async () => {
    const grey = await sharp(await testImage(64, 48, "png")).greyscale().png().toBuffer();
    const g = await pre.fromEncoded(grey);
    expect(g.data[0]).toBe(g.data[224 * 224]);
    const rgba = await sharp(await testImage(224, 224, "png")).ensureAlpha(0).png().toBuffer();
    const opaque = await pre.fromEncoded(await testImage(224, 224, "png"));
    expect((await pre.fromEncoded(rgba)).data).toEqual(opaque.data);
  });

  it("refuses non-images, truncated JPEGs, oversized bytes and decompression bombs with a reason", async () => {
    expect(await reason(pre.fromEncoded(Buffer.from("hello, this is not an image at all")))).toBe("UNSUPPORTED_FORMAT");
    expect(await reason(pre.fromEncoded(Buffer.alloc(0)))).toBe("EMPTY");
    const gif = await sharp(await testImage(16, 16, "png")).gif().toBuffer();
    expect(await reason(pre.fromEncoded(gif))).toBe("UNSUPPORTED_FORMAT");
    const jpeg = await testImage(500, 375, "jpeg");
    expect(await reason(pre.fromEncoded(jpeg.subarray(0, Math.floor(jpeg.length / 2))))).toBe("CORRUPT");
    expect(await reason(pre.fromEncoded(pngBomb()))).toBe("TOO_MANY_PIXELS");
    const small = new Preprocessor(SPEC, { maxPixels: 40_000_000, maxBytes: 1000 });
    expect(await reason(small.fromEncoded(jpeg))).toBe("TOO_LARGE");
  });

  it("refuses specs it cannot reproduce", () => {
    expect(() => new Preprocessor({ ...SPEC, resize: "cover" })).toThrow(/resize/);
    expect(() => new Preprocessor({ ...SPEC, resize_kernel: "magic" })).toThrow(/kernel/);
    expect(() => new Preprocessor({ ...SPEC, schema: "x" })).toThrow(/schema/);
  });
});

const MODEL = resolve(process.env["GLIMPSE_GOLDEN_MODEL_DIR"] ?? join(DEFAULT_DEMO_DIR, "model"));
describe("Preprocessor against the demo model's golden images", () => {
  it("reproduces the exporter's pixels for every golden PNG", async () => {
    // a missing fixture fails loudly instead of skipping the suite
    expect(existsSync(join(MODEL, "golden.json")), `${MODEL}/golden.json is missing`).toBe(true);
    const pre = Preprocessor.fromJson(readFileSync(join(MODEL, "preprocess.json")));
    const golden = JSON.parse(readFileSync(join(MODEL, "golden.json"), "utf8")) as Golden;
    expect(golden.images.length).toBeGreaterThan(0);
    for (const g of golden.images) {
      const px = await pre.fromEncoded(readFileSync(join(MODEL, g.file)));
      [...px.data.subarray(0, 8)].forEach((v, i) => expect(Math.abs(v - g.pixels_first8[i]!)).toBeLessThanOrEqual(golden.tolerance.pixels));
      let sum = 0;
      for (const v of px.data) sum += v;
      expect(Math.abs(sum - g.pixels_sum)).toBeLessThan(1e-3);
    }
  });
});
