/**
 * A small Flickr8K-format fixture for tests: two zips in the original layout
 * (`Flickr8k_Dataset.zip` with `Flicker8k_Dataset/*.jpg`, `Flickr8k_text.zip` with
 * `Flickr8k.token.txt`, the lemma file, the three split lists and a readme), made of
 * small synthetic images, with the real data's quirks: one corrupt (truncated) JPEG,
 * the `x.jpg.1#0` caption name, stray spaces before punctuation, captions for an image
 * the archive lacks, and an image in no split list.
 */
import { createWriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import sharp from "sharp";
import yazl from "yazl";
import { createHash } from "node:crypto";

export interface FixtureOptions {
  /** Images in the archive, the corrupt one included (default 36). */
  images?: number;
  /** Put one train image into the test list as well (a validation failure). */
  overlap?: boolean;
  /** Give one train image no captions (a validation failure). */
  uncaptionedInSplit?: boolean;
  /** Seed for the synthetic pictures (different seeds give different bytes). */
  seed?: number;
}

/**
 * Static-server routes serving fixtures in the public archives' file names, one folder per
 * fixture: `{ "": a, "/v2": b }` → `/Flickr8k_Dataset.zip`, `/Flickr8k_text.zip`, `/v2/…`.
 */
export function archiveRoutes(byPrefix: Record<string, Fixture>): Record<string, string> {
  const routes: Record<string, string> = {};
  for (const [prefix, fx] of Object.entries(byPrefix)) {
    routes[`${prefix}/Flickr8k_Dataset.zip`] = fx.imagesZip;
    routes[`${prefix}/Flickr8k_text.zip`] = fx.captionsZip;
  }
  return routes;
}

export interface Fixture {
  dir: string;
  imagesZip: string;
  captionsZip: string;
  /** All image ids in the archive (sorted). */
  ids: string[];
  corruptId: string;
  unlistedId: string;
  quirkId: string;
  /** Has captions, but no image in the archive. */
  captionOnlyId: string;
  /** Set with `overlap`: in train and test. */
  overlapId?: string;
  /** Set with `uncaptionedInSplit`. */
  uncaptionedId?: string;
  lists: { train: string[]; dev: string[]; test: string[] };
  /** What a full official run should publish. */
  expected: { images: number; captions: number; train: number; dev: number; test: number; unsplit: number; rejected: number };
}

function idFor(i: number, seed: number): string {
  const h = createHash("sha256").update(`${seed}:${i}`).digest("hex").slice(0, 10);
  return `${1_000_000_000 + i * 7919}_${h}`;
}

const WORDS = ["dog", "child", "man", "woman", "ball", "beach", "street", "park", "bike", "water"];

async function picture(i: number, seed: number): Promise<Buffer> {
  const w = 80 + (i % 5) * 8;
  const h = 60 + (i % 3) * 6;
  const r = (i * 37 + seed * 11) % 256;
  const g = (i * 91 + seed * 7) % 256;
  const b = (i * 53 + seed * 3) % 256;
  // A two-tone picture so every image encodes to distinct bytes.
  const base = sharp({ create: { width: w, height: h, channels: 3, background: { r, g, b } } });
  const stripe = await sharp({ create: { width: Math.max(4, (i * 5) % w), height: h, channels: 3, background: { r: 255 - r, g: 255 - g, b: 255 - b } } })
    .png()
    .toBuffer();
  return base.composite([{ input: stripe, left: 0, top: 0 }]).jpeg({ quality: 85 }).toBuffer();
}

function zipTo(path: string, files: { name: string; data: Buffer | string; compress?: boolean }[], dirs: string[] = []): Promise<void> {
  const zip = new yazl.ZipFile();
  const mtime = new Date("2013-01-01T00:00:00Z");
  for (const d of dirs) zip.addEmptyDirectory(d, { mtime });
  for (const f of files) zip.addBuffer(Buffer.isBuffer(f.data) ? f.data : Buffer.from(f.data), f.name, { compress: f.compress ?? true, mtime });
  zip.end();
  return pipeline(zip.outputStream, createWriteStream(path));
}

export async function makeFlickr8kFixture(dir: string, opts: FixtureOptions = {}): Promise<Fixture> {
  const n = opts.images ?? 36;
  const seed = opts.seed ?? 1;
  await mkdir(dir, { recursive: true });
  const ids = Array.from({ length: n }, (_, i) => idFor(i, seed)).sort();
  const corruptId = ids[3] as string;
  const unlistedId = ids[7] as string;
  const quirkId = ids[10] as string;
  const captionOnlyId = idFor(n + 1, seed);
  const overlapId = opts.overlap ? (ids[1] as string) : undefined;
  const uncaptionedId = opts.uncaptionedInSplit ? (ids[2] as string) : undefined;

  // Images: stored (not deflated), like the real archive.
  const files: { name: string; data: Buffer; compress: boolean }[] = [];
  for (const [i, id] of ids.entries()) {
    let data = await picture(i, seed);
    if (id === corruptId) data = data.subarray(0, Math.floor(data.length / 2)); // truncated JPEG
    files.push({ name: `Flicker8k_Dataset/${id}.jpg`, data, compress: false });
  }
  const imagesZip = join(dir, "Flickr8k_Dataset.zip");
  await zipTo(imagesZip, files, ["Flicker8k_Dataset/"]);

  // Captions: 5 per image, with the real file's quirks.
  const lines: string[] = [];
  let captions = 0;
  for (const [i, id] of [...ids, captionOnlyId].entries()) {
    if (id === uncaptionedId) continue;
    for (let k = 0; k < 5; k++) {
      const name = id === quirkId && k === 0 ? `${id}.jpg.1#0` : `${id}.jpg#${k}`;
      const w = WORDS[(i + k) % WORDS.length] as string;
      const text = k % 2 === 0 ? `A ${w} is playing in the ${WORDS[(i * 3 + k) % WORDS.length]} .` : `${k === 1 ? "TWO" : "two"}  ${w}s , running outside !`;
      lines.push(`${name}\t${text}`);
      if (id !== corruptId && id !== captionOnlyId) captions++;
    }
  }
  const token = `${lines.join("\n")}\n`;

  // Split lists: every image but one; the corrupt one in the test list.
  const listed = ids.filter((id) => id !== unlistedId);
  const nTrain = Math.round(listed.length * 0.66);
  const nDev = Math.floor((listed.length - nTrain) / 2);
  const rest = listed.filter((id) => id !== corruptId);
  const train = rest.slice(0, nTrain);
  const dev = rest.slice(nTrain, nTrain + nDev);
  const test = [...rest.slice(nTrain + nDev), corruptId];
  if (overlapId && !test.includes(overlapId)) test.push(overlapId);
  if (uncaptionedId && !train.includes(uncaptionedId)) throw new Error("fixture: uncaptioned image must be in train");
  const list = (xs: string[]): string => `${xs.map((x) => `${x}.jpg`).join("\n")}\n`;
  const captionsZip = join(dir, "Flickr8k_text.zip");
  await zipTo(captionsZip, [
    { name: "Flickr8k.token.txt", data: token },
    { name: "Flickr8k.lemma.token.txt", data: token.toLowerCase() },
    { name: "Flickr_8k.trainImages.txt", data: list(train) },
    { name: "Flickr_8k.devImages.txt", data: list(dev) },
    { name: "Flickr_8k.testImages.txt", data: list(test) },
    { name: "readme.txt", data: "A synthetic Flickr8K-format fixture for the pipeline tests.\n" },
  ]);

  const fixture: Fixture = {
    dir,
    imagesZip,
    captionsZip,
    ids,
    corruptId,
    unlistedId,
    quirkId,
    captionOnlyId,
    lists: { train, dev, test },
    expected: {
      images: n - 1,
      captions,
      train: train.length,
      dev: dev.length,
      test: test.filter((id) => id !== corruptId).length,
      unsplit: 1,
      rejected: 1,
    },
  };
  if (overlapId) fixture.overlapId = overlapId;
  if (uncaptionedId) fixture.uncaptionedId = uncaptionedId;
  return fixture;
}
