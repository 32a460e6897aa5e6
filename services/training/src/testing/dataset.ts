/**
 * A tiny published dataset version for tests, in the pipeline's layout
 * (packages/pipeline/src/layout.ts): content-addressed blobs, an immutable manifest whose sha256
 * prefix is the version, and latest.json written last. Images are small PNGs of a coloured
 * square on a coloured background, captioned with their colours, so a model can learn them.
 */
import { createHash } from "node:crypto";
import { deflateSync } from "node:zlib";
import { putJson, type ObjectStore } from "@glimpse/objectstore";

const COLORS: Record<string, [number, number, number]> = {
  red: [220, 30, 30],
  green: [30, 180, 40],
  blue: [30, 60, 220],
  yellow: [235, 220, 30],
};
const BACKGROUNDS: Record<string, [number, number, number]> = { grey: [128, 128, 128], orange: [240, 140, 30], purple: [120, 40, 160] };

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** An RGB PNG: `pixel(x, y)` gives each pixel's colour. */
export function png(width: number, height: number, pixel: (x: number, y: number) => [number, number, number]): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit, truecolour, deflate, no filter, no interlace
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    for (let x = 0; x < width; x++) raw.set(pixel(x, y), row + 1 + x * 3);
  }
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

export interface TinyDatasetOptions {
  dataset?: string;
  train?: number;
  dev?: number;
  test?: number;
  /** Image side in pixels. */
  size?: number;
}

/** Publishes a tiny dataset version into `store`; returns its version id. */
export async function publishTinyDataset(store: ObjectStore, opts: TinyDatasetOptions = {}): Promise<string> {
  const dataset = opts.dataset ?? "flickr8k";
  const size = opts.size ?? 32;
  const counts = { train: opts.train ?? 16, dev: opts.dev ?? 8, test: opts.test ?? 4 };
  const colours = Object.keys(COLORS);
  const backgrounds = Object.keys(BACKGROUNDS);

  const blob = async (data: Buffer) => {
    const sha256 = createHash("sha256").update(data).digest("hex");
    const key = `datasets/${dataset}/blobs/sha256/${sha256}`;
    await store.put(key, data);
    return { key, sha256, size: data.length };
  };

  const captions: Record<string, string[]> = {};
  const splits: Record<string, string[]> = { train: [], dev: [], test: [] };
  const images: Record<string, { key: string; sha256: string; size: number; width: number; height: number }> = {};
  let n = 0;
  for (const split of ["train", "dev", "test"] as const) {
    for (let i = 0; i < counts[split]; i++, n++) {
      const c = colours[n % colours.length]!;
      const b = backgrounds[Math.floor(n / colours.length) % backgrounds.length]!;
      const lo = (n * 3) % Math.max(1, size / 2);
      const hi = lo + Math.max(2, Math.floor(size / 3));
      const data = png(size, size, (x, y) => (x >= lo && x < hi && y >= lo && y < hi ? COLORS[c]! : BACKGROUNDS[b]!));
      const id = `img${String(n).padStart(4, "0")}`;
      images[id] = { ...(await blob(data)), width: size, height: size };
      captions[id] = [`A ${c} square on a ${b} background .`, `a ${c} box , ${b} behind it`, `The ${c.toUpperCase()} square sits on ${b}`, `${b} backdrop with a ${c} square`, `there is one ${c} square here on ${b}`];
      splits[split]!.push(id);
    }
  }
  const manifest = {
    schema: "glimpse.dataset.manifest/v1",
    dataset,
    params: { test: "tiny" },
    sources: [],
    image_format: { format: "png", width: size, height: size },
    counts: { images: n, captions: n * 5, ...counts, unsplit: 0 },
    captions: await blob(Buffer.from(JSON.stringify(captions))),
    splits: await blob(Buffer.from(JSON.stringify(splits))),
    images,
  };
  const raw = Buffer.from(JSON.stringify(manifest, null, 1));
  const version = createHash("sha256").update(raw).digest("hex").slice(0, 16);
  const manifestKey = `datasets/${dataset}/versions/${version}/manifest.json`;
  await store.put(manifestKey, raw, { contentType: "application/json" });
  await putJson(store, `datasets/${dataset}/latest.json`, { version, manifest: manifestKey, published_at: new Date().toISOString() });
  return version;
}
