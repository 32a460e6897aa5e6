import sharp, { type Sharp } from "sharp";
import { describe, expect, it } from "vitest";
import { IMAGE_FORMAT, decodeImage, normalizeImage } from "./images.js";

async function twoTone(w: number, h: number): Promise<Sharp> {
  const left = await sharp({ create: { width: w / 2, height: h, channels: 3, background: { r: 255, g: 0, b: 0 } } }).png().toBuffer();
  return sharp({ create: { width: w, height: h, channels: 3, background: { r: 0, g: 0, b: 255 } } }).composite([{ input: left, left: 0, top: 0 }]);
}

async function pixel(jpeg: Buffer, x: number, y: number): Promise<number[]> {
  const { data, info } = await sharp(jpeg).raw().toBuffer({ resolveWithObject: true });
  const i = (y * info.width + x) * info.channels;
  return [data[i] as number, data[i + 1] as number, data[i + 2] as number];
}

describe("image normalisation", () => {
  it("squashes to 224x224 sRGB JPEG without metadata, deterministically", async () => {
    const input = await (await twoTone(300, 120)).ensureAlpha(0.5).withMetadata({ exif: { IFD0: { Copyright: "someone" } } }).png().toBuffer();
    const a = await normalizeImage(input);
    const b = await normalizeImage(input);
    expect(a.data.equals(b.data)).toBe(true);
    expect([a.width, a.height]).toEqual([224, 224]);
    const meta = await sharp(a.data).metadata();
    expect(meta).toMatchObject({ format: "jpeg", width: 224, height: 224, channels: 3, space: "srgb" });
    expect(meta.exif).toBeUndefined();
    expect(meta.icc).toBeUndefined();
    expect(meta.orientation).toBeUndefined();
    expect((await decodeImage(a.data)).format).toBe("jpeg");
  });

  it("applies the EXIF orientation", async () => {
    // Stored as red|blue side by side; orientation 6 (rotate 90° clockwise) shows red on top.
    const input = await (await twoTone(200, 100)).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const out = await normalizeImage(input);
    const top = await pixel(out.data, 112, 20);
    const bottom = await pixel(out.data, 112, 200);
    expect(top[0]).toBeGreaterThan(200);
    expect(top[2]).toBeLessThan(60);
    expect(bottom[2]).toBeGreaterThan(200);
    expect(bottom[0]).toBeLessThan(60);
  });

  it("rejects corrupt and truncated images", async () => {
    const good = await (await twoTone(120, 80)).jpeg().toBuffer();
    await expect(normalizeImage(good.subarray(0, Math.floor(good.length / 2)))).rejects.toThrow();
    await expect(normalizeImage(Buffer.from("definitely not an image"))).rejects.toThrow();
  });

  it("rejects images over the pixel limit (decompression bombs)", async () => {
    const big = await sharp({ create: { width: 2000, height: 1500, channels: 3, background: "#808080" } }).jpeg().toBuffer();
    await expect(normalizeImage(big, { ...IMAGE_FORMAT, max_input_pixels: 1_000_000 })).rejects.toThrow(/pixel limit/i);
    expect((await normalizeImage(big)).width).toBe(224);
  });

  it("keeps an input already in the target format byte for byte, and re-encodes one that is not", async () => {
    const conforming = await (await twoTone(224, 224)).jpeg({ quality: 80, chromaSubsampling: "4:2:0" }).toBuffer();
    const kept = await normalizeImage(conforming);
    expect(kept.passthrough).toBe(true);
    expect(kept.data.equals(conforming)).toBe(true);
    // the same pixels with metadata, another size, or progressive: normalised as usual
    const variants = [
      await (await twoTone(224, 224)).jpeg({ quality: 80 }).withMetadata({ exif: { IFD0: { Copyright: "someone" } } }).toBuffer(),
      await (await twoTone(224, 224)).jpeg({ quality: 80 }).withMetadata({ orientation: 6 }).toBuffer(),
      await (await twoTone(226, 224)).jpeg({ quality: 80 }).toBuffer(),
      await (await twoTone(224, 224)).jpeg({ quality: 80, progressive: true }).toBuffer(),
      await (await twoTone(224, 224)).png().toBuffer(),
    ];
    for (const v of variants) {
      const out = await normalizeImage(v);
      expect(out.passthrough).toBe(false);
      expect(out.data.equals(v)).toBe(false);
      expect((await sharp(out.data).metadata()).exif).toBeUndefined();
    }
    // pass-through still decodes fully: a truncated conforming JPEG is rejected
    await expect(normalizeImage(conforming.subarray(0, conforming.length - 200))).rejects.toThrow();
    // and can be switched off
    expect((await normalizeImage(conforming, { ...IMAGE_FORMAT, passthrough: "never" })).passthrough).toBe(false);
  });
});
