import { createHash } from "node:crypto";
import exifReader from "exif-reader";
import sharp, { type Exif } from "sharp";
import { describe, expect, it } from "vitest";
import { normalizeImage } from "./images.js";
import { ingestPhoto, type IngestedPhoto } from "./photos.js";
import { badPhotoCorpus, orientedVariants } from "./testing/photos.js";

/** 64×48 with red, green, blue and yellow quadrants: no rotation or flip maps it onto itself. */
async function quadrants(): Promise<Buffer> {
  const q = (r: number, g: number, b: number) =>
    sharp({ create: { width: 32, height: 24, channels: 3, background: { r, g, b } } }).png().toBuffer();
  return sharp({ create: { width: 64, height: 48, channels: 3, background: "#000" } })
    .composite([
      { input: await q(255, 0, 0), left: 0, top: 0 },
      { input: await q(0, 255, 0), left: 32, top: 0 },
      { input: await q(0, 0, 255), left: 0, top: 24 },
      { input: await q(255, 255, 0), left: 32, top: 24 },
    ])
    .jpeg({ quality: 95, chromaSubsampling: "4:4:4" })
    .toBuffer();
}

/** Mean absolute difference of two images' RGB pixels (same size), 0..255. */
async function mad(a: Buffer, b: Buffer): Promise<number> {
  const [x, y] = await Promise.all([a, b].map((i) => sharp(i).removeAlpha().raw().toBuffer({ resolveWithObject: true })));
  expect([x!.info.width, x!.info.height]).toEqual([y!.info.width, y!.info.height]);
  let sum = 0;
  for (let i = 0; i < x!.data.length; i++) sum += Math.abs(x!.data[i]! - y!.data[i]!);
  return sum / x!.data.length;
}

async function ingestOk(bytes: Buffer): Promise<IngestedPhoto> {
  const r = await ingestPhoto(bytes);
  if (!r.ok) throw new Error(`skipped: ${r.reason} ${r.message}`);
  return r;
}

describe("ingestPhoto", () => {
  it("shows every EXIF orientation upright: size, normalised copy and thumbnail", async () => {
    const upright = await quadrants();
    const reference = (await normalizeImage(upright)).data;
    const variants = await orientedVariants(upright);
    expect(variants.map((v) => v.orientation)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    for (const { orientation, bytes } of variants) {
      const meta = await sharp(bytes).metadata();
      expect(meta.orientation ?? 1).toBe(orientation);
      expect([meta.width, meta.height]).toEqual(orientation >= 5 ? [48, 64] : [64, 48]);
      // The stored pixels really are turned: ignoring the tag would not give the upright image.
      const ignoringTag = await sharp(bytes).resize(224, 224, { fit: "fill" }).jpeg().toBuffer();
      if (orientation !== 1) expect(await mad(ignoringTag, reference), `orientation ${orientation} stored`).toBeGreaterThan(40);

      const r = await ingestOk(bytes);
      expect([r.width, r.height], `orientation ${orientation}`).toEqual([64, 48]);
      expect(r.normalized.equals((await normalizeImage(bytes)).data)).toBe(true);
      expect(await mad(r.normalized, reference), `orientation ${orientation} normalized`).toBeLessThan(3);
      expect(await mad(r.thumbnail, upright), `orientation ${orientation} thumbnail`).toBeLessThan(3);
    }
  });

  it("skips each bad file with its reason and never throws", async () => {
    const seen: Record<string, string> = {};
    for (const { name, bytes, reason } of await badPhotoCorpus()) {
      const r = await ingestPhoto(bytes);
      expect(r.ok, name).toBe(false);
      if (r.ok) continue;
      seen[name] = `${r.reason}: ${r.message}`;
      expect(r.reason, `${name}: ${r.message}`).toBe(reason);
    }
    expect(seen["document.pdf"]).toMatch(/^UNSUPPORTED_FORMAT: pdf /);
    expect(seen["fake.heic"]).toMatch(/^UNSUPPORTED_FORMAT: heif /);
    expect(seen["drawing.svg"]).toMatch(/^UNSUPPORTED_FORMAT: svg /);
    // Refused from the header (the decoder's own pixel-limit error would not name the size).
    expect(seen["bomb.png"]).toContain("60000×60000 = 3600000000 pixels");
    expect(seen["bomb.jpg"]).toContain("60000×60000 = 3600000000 pixels");
  });

  it("applies the byte and pixel limits", async () => {
    const photo = await quadrants();
    expect(await ingestPhoto(photo, { maxBytes: 100 })).toEqual({
      ok: false,
      reason: "TOO_LARGE",
      message: `${photo.length} bytes is over the limit of 100 bytes`,
    });
    expect(await ingestPhoto(photo, { maxPixels: 3000 })).toMatchObject({ ok: false, reason: "TOO_LARGE", message: expect.stringContaining("3072 pixels") });
    expect((await ingestPhoto(photo, { maxBytes: photo.length, maxPixels: 3072 })).ok).toBe(true);
  });

  it("accepts the raster formats and names them", async () => {
    const { data, info } = await sharp(await quadrants()).raw().toBuffer({ resolveWithObject: true });
    const base = () => sharp(data, { raw: info });
    const inputs: [string, Buffer][] = [
      ["jpeg", await base().jpeg().toBuffer()],
      ["png", await base().png().toBuffer()],
      ["webp", await base().webp().toBuffer()],
      ["gif", await base().gif().toBuffer()],
      ["tiff", await base().tiff().toBuffer()],
      ["avif", await base().avif().toBuffer()],
    ];
    for (const [format, bytes] of inputs) {
      const r = await ingestOk(bytes);
      expect([r.format, r.width, r.height]).toEqual([format, 64, 48]);
    }
  });

  it("reads the taken time and camera from EXIF, and the thumbnail carries no metadata", async () => {
    const bytes = await sharp(await quadrants())
      .withExif({
        IFD0: { Model: "  Pixel 9 ", DateTime: "2025:01:01 00:00:00" },
        IFD2: { DateTimeOriginal: "2024:05:06 07:08:09", DateTimeDigitized: "2024:05:06 07:08:10" },
        IFD3: { GPSLatitudeRef: "N", GPSLatitude: "51/1 30/1 0/1", GPSLongitudeRef: "W", GPSLongitude: "0/1 7/1 0/1" },
      })
      .withIccProfile("p3")
      .withXmp('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>')
      .jpeg()
      .toBuffer();
    const source = await sharp(bytes).metadata();
    expect(source.icc).toBeDefined();
    expect(source.xmp).toBeDefined();
    expect(exifReader(source.exif!).GPSInfo).toMatchObject({ GPSLatitudeRef: "N", GPSLatitude: [51, 30, 0] });

    const r = await ingestOk(bytes);
    expect(r.takenTime?.toISOString()).toBe("2024-05-06T07:08:09.000Z"); // EXIF wall clock read as UTC
    expect(r.cameraModel).toBe("Pixel 9");
    const thumb = await sharp(r.thumbnail).metadata();
    expect(thumb).toMatchObject({ format: "jpeg", space: "srgb", channels: 3, width: 64, height: 48 });
    expect(thumb.exif).toBeUndefined();
    expect(thumb.icc).toBeUndefined();
    expect(thumb.xmp).toBeUndefined();
    expect(r.thumbnail.includes("Pixel 9")).toBe(false);
  });

  it("falls back to DateTimeDigitized, then DateTime, and tolerates missing EXIF", async () => {
    const quadrantsJpeg = await quadrants();
    const withExif = (exif: Exif) => sharp(quadrantsJpeg).withExif(exif).jpeg().toBuffer();
    const digitized = await ingestOk(await withExif({ IFD0: { DateTime: "2025:01:01 00:00:00" }, IFD2: { DateTimeDigitized: "2023:02:03 04:05:06" } }));
    expect(digitized.takenTime?.toISOString()).toBe("2023-02-03T04:05:06.000Z");
    const dateTime = await ingestOk(await withExif({ IFD0: { DateTime: "2025:01:01 00:00:00", Make: "x" } }));
    expect(dateTime.takenTime?.toISOString()).toBe("2025-01-01T00:00:00.000Z");
    expect(dateTime.cameraModel).toBe("");
    const placeholder = await ingestOk(await withExif({ IFD2: { DateTimeOriginal: "0000:00:00 00:00:00" } }));
    expect(placeholder.takenTime).toBeUndefined();
    const none = await ingestOk(quadrantsJpeg);
    expect(none.takenTime).toBeUndefined();
    expect(none.cameraModel).toBe("");
  });

  it("flattens alpha onto white and shrinks a large photo to at most 256 px", async () => {
    // 600×300, left half opaque blue, right half fully transparent.
    const png = await sharp({ create: { width: 600, height: 300, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } })
      .composite([{ input: { create: { width: 300, height: 300, channels: 4, background: { r: 0, g: 0, b: 255, alpha: 1 } } }, left: 0, top: 0 }])
      .png()
      .toBuffer();
    expect((await sharp(png).metadata()).hasAlpha).toBe(true);
    const r = await ingestOk(png);
    expect([r.format, r.width, r.height]).toEqual(["png", 600, 300]);
    const { data, info } = await sharp(r.thumbnail).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([256, 128, 3]);
    const px = (x: number, y: number) => [...data.subarray((y * 256 + x) * 3, (y * 256 + x) * 3 + 3)];
    for (const c of px(220, 64)) expect(c).toBeGreaterThan(245); // transparent → white
    expect(px(30, 64)[2]).toBeGreaterThan(230);
    expect(px(30, 64)[0]).toBeLessThan(20);
    expect((await sharp(r.normalized).metadata()).channels).toBe(3);
  });

  it("identifies a photo by the sha256 of its bytes", async () => {
    const bytes = await quadrants();
    const [a, b] = [await ingestOk(bytes), await ingestOk(Buffer.from(bytes))];
    const sha = createHash("sha256").update(bytes).digest("hex");
    expect([a.sha256, a.photoId, a.sizeBytes]).toEqual([sha, sha.slice(0, 16), bytes.length]);
    expect([b.sha256, b.photoId]).toEqual([a.sha256, a.photoId]);
    const c = await ingestOk(await sharp(bytes).jpeg({ quality: 50 }).toBuffer());
    expect(c.photoId).not.toBe(a.photoId);
  });
});
