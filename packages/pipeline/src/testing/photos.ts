import { crc32 } from "node:zlib";
import sharp from "sharp";
import type { SkipReason } from "../photos.js";

/**
 * Where stored pixel (x, y) comes from in the upright W×H image, for each EXIF orientation
 * (written from the spec's "0th row / 0th column" table, independently of sharp's autoOrient).
 */
const FROM_UPRIGHT: Record<number, (x: number, y: number, W: number, H: number) => [number, number]> = {
  1: (x, y) => [x, y],
  2: (x, y, W) => [W - 1 - x, y], // 0th row top, 0th column right
  3: (x, y, W, H) => [W - 1 - x, H - 1 - y], // bottom, right
  4: (x, y, _W, H) => [x, H - 1 - y], // bottom, left
  5: (x, y) => [y, x], // 0th row left, 0th column top
  6: (x, y, W) => [W - 1 - y, x], // right, top
  7: (x, y, W, H) => [W - 1 - y, H - 1 - x], // right, bottom
  8: (x, y, _W, H) => [y, H - 1 - x], // left, bottom
};

/**
 * The upright image stored as a camera would for each EXIF orientation 1..8: pixels
 * rotated/flipped by the inverse of the orientation, and the tag set, so that a correct viewer
 * (or autoOrient) shows `upright` again. JPEG, quality 95, 4:4:4.
 */
export async function orientedVariants(upright: Buffer): Promise<{ orientation: number; bytes: Buffer }[]> {
  const { data, info } = await sharp(upright).autoOrient().removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const { width: W, height: H } = info;
  const out: { orientation: number; bytes: Buffer }[] = [];
  for (let orientation = 1; orientation <= 8; orientation++) {
    const map = FROM_UPRIGHT[orientation]!;
    const [w, h] = orientation >= 5 ? [H, W] : [W, H];
    const stored = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const [ux, uy] = map(x, y, W, H);
        data.copy(stored, (y * w + x) * 3, (uy * W + ux) * 3, (uy * W + ux) * 3 + 3);
      }
    }
    const bytes = await sharp(stored, { raw: { width: w, height: h, channels: 3 } })
      .jpeg({ quality: 95, chromaSubsampling: "4:4:4" })
      .withMetadata({ orientation })
      .toBuffer();
    out.push({ orientation, bytes });
  }
  return out;
}

/** Files ingestPhoto must skip, each with the reason it must give. */
export async function badPhotoCorpus(): Promise<{ name: string; bytes: Buffer; reason: SkipReason }[]> {
  const jpeg = await sharp({ create: { width: 320, height: 240, channels: 3, background: "#000", noise: { type: "gaussian", mean: 128, sigma: 40 } } })
    .jpeg()
    .toBuffer();
  const tiff = await sharp({ create: { width: 320, height: 240, channels: 3, background: "#808080" } }).tiff().toBuffer();
  const random = Buffer.alloc(4096);
  for (let i = 0, s = 12345; i < random.length; i++) random[i] = (s = (s * 1103515245 + 12345) >>> 0) >>> 24;
  const pdf = Buffer.from(
    "%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n" +
      "3 0 obj<</Type/Page/MediaBox[0 0 72 72]/Parent 2 0 R>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n",
  );
  const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48"><rect width="64" height="48" fill="red"/></svg>');
  return [
    { name: "empty.jpg", bytes: Buffer.alloc(0), reason: "EMPTY" },
    { name: "random.jpg", bytes: random, reason: "NOT_AN_IMAGE" },
    { name: "notes.txt", bytes: Buffer.from("shopping list: eggs, milk\n"), reason: "NOT_AN_IMAGE" },
    { name: "truncated.jpg", bytes: jpeg.subarray(0, jpeg.length >> 1), reason: "TRUNCATED" },
    { name: "truncated.tiff", bytes: tiff.subarray(0, tiff.length >> 1), reason: "TRUNCATED" },
    { name: "document.pdf", bytes: pdf, reason: "UNSUPPORTED_FORMAT" },
    { name: "fake.heic", bytes: fakeHeic(), reason: "UNSUPPORTED_FORMAT" },
    { name: "drawing.svg", bytes: svg, reason: "UNSUPPORTED_FORMAT" },
    { name: "bomb.png", bytes: await pngBomb(60_000, 60_000), reason: "TOO_LARGE" },
    { name: "bomb.jpg", bytes: await jpegBomb(60_000, 60_000), reason: "TOO_LARGE" },
  ];
}

/** A valid 1×1 PNG whose IHDR (CRC fixed up) declares width×height. */
export async function pngBomb(width: number, height: number): Promise<Buffer> {
  const png = Buffer.from(await sharp({ create: { width: 1, height: 1, channels: 3, background: "#808080" } }).png().toBuffer());
  // signature (8) | length (4) "IHDR" width height … | CRC over type + data (13 bytes)
  png.writeUInt32BE(width, 16);
  png.writeUInt32BE(height, 20);
  png.writeUInt32BE(crc32(png.subarray(12, 29)), 29);
  return png;
}

/** A valid 8×8 JPEG whose SOF0 declares width×height (at most 65535 each). */
export async function jpegBomb(width: number, height: number): Promise<Buffer> {
  const jpeg = Buffer.from(await sharp({ create: { width: 8, height: 8, channels: 3, background: "#808080" } }).jpeg().toBuffer());
  const sof = jpeg.indexOf(Buffer.from([0xff, 0xc0]));
  // FFC0 | length (2) | precision (1) | height (2) | width (2)
  jpeg.writeUInt16BE(height, sof + 5);
  jpeg.writeUInt16BE(width, sof + 7);
  return jpeg;
}

/** An ISO-BMFF file with an `ftyp heic` box and an empty meta box: HEIC by its magic, not decodable. */
function fakeHeic(): Buffer {
  const box = (type: string, body: Buffer) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(8 + body.length);
    head.write(type, 4, "latin1");
    return Buffer.concat([head, body]);
  };
  return Buffer.concat([box("ftyp", Buffer.from("heic\0\0\0\0mif1heic", "latin1")), box("meta", Buffer.alloc(8))]);
}
