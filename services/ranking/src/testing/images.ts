/** Test images made on the fly: real JPEG/PNG/WebP, truncated data and decompression bombs. */
import { crc32, deflateSync } from "node:zlib";
import sharp from "sharp";

/** A noisy-but-deterministic image (gradients + a pattern) as JPEG, PNG or WebP. */
export async function testImage(width: number, height: number, format: "jpeg" | "png" | "webp" = "jpeg", seed = 1): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      raw[i] = (x * (seed + 3) + y) & 255;
      raw[i + 1] = (y * (seed + 5)) & 255;
      raw[i + 2] = ((x ^ y) * (seed + 1)) & 255;
    }
  }
  const img = sharp(raw, { raw: { width, height, channels: 3 } });
  return (format === "jpeg" ? img.jpeg({ quality: 85 }) : format === "png" ? img.png() : img.webp({ quality: 85 })).toBuffer();
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td) >>> 0);
  return Buffer.concat([len, td, crc]);
}

/**
 * A PNG whose header claims width×height pixels with a few hundred bytes of data: what a
 * decompression bomb looks like to a server that trusts the header only after decoding.
 */
export function pngBomb(width = 20_000, height = 20_000): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  // One row of zeros, compressed; the rest is "to come" (never decoded).
  const idat = deflateSync(Buffer.alloc(1 + width * 3));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr), chunk("IDAT", idat), chunk("IEND", Buffer.alloc(0))]);
}
