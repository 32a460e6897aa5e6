/**
 * Seeding an empty store from the demo pack (`demo/`), so the embedded default answers
 * searches with no network and no training run:
 *
 * 1. the demo model (`demo/model/`, an export of the project's trainer) becomes a registry
 *    version, and the `production` alias is pointed at it — only when there is no alias
 *    (create-only write: an existing production alias is never overwritten);
 * 2. the demo images and captions are published as dataset `flickr8k-demo` in the data
 *    pipeline's layout (content-addressed blobs, canonical manifest, latest.json last);
 * 3. the pack's prebuilt gallery index, when it matches that (model, dataset version), is
 *    copied beside the model so serving starts without an index job.
 *
 * Every step checks what is there first, so seeding is idempotent and cheap on restarts.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { PreconditionFailedError, type ObjectStore } from "@glimpse/objectstore";
import { blobKey, canonicalJson, manifestBytes, manifestKey, MANIFEST_SCHEMA, moveLatest, PublishConflictError, putManifest, type Manifest } from "@glimpse/pipeline";
import type { Logger } from "@glimpse/logging";
import { readIndexDocument, indexPrefix, type IndexDocument } from "./index/store.js";
import { ALIAS_KEY, HASHED_FILES, modelKey, readAlias, sha256Hex, versionOf, writeAlias } from "./registry.js";

export const DEMO_DATASET = "flickr8k-demo";
export const DEFAULT_DEMO_DIR = resolve(fileURLToPath(new URL("../../../demo/", import.meta.url)));

export interface SeedResult {
  /** The demo model version (whether or not it was promoted). */
  modelVersion?: string;
  promoted: boolean;
  /** The demo dataset version. */
  datasetVersion?: string;
  published: boolean;
  indexCopied: boolean;
}

/** A model export's files (relative names → bytes) as checksums.json lists them, verified; `sub` is the folder under `dir` (the pack's "model"). */
export function readDemoModel(dir: string, sub = "model"): { version: string; files: Map<string, Buffer> } | undefined {
  const mdir = join(dir, sub);
  if (!existsSync(join(mdir, "checksums.json"))) return undefined;
  const sums = JSON.parse(readFileSync(join(mdir, "checksums.json"), "utf8")) as Record<string, string>;
  const files = new Map<string, Buffer>();
  for (const [f, want] of Object.entries(sums)) {
    const bytes = readFileSync(join(mdir, f));
    if (sha256Hex(bytes) !== want) throw new Error(`${mdir}: ${f} does not match checksums.json`);
    files.set(f, bytes);
  }
  files.set("checksums.json", readFileSync(join(mdir, "checksums.json")));
  for (const f of HASHED_FILES) if (!files.has(f)) throw new Error(`${mdir}: ${f} missing`);
  return { version: versionOf(Object.fromEntries(files)), files };
}

export interface PublishableDataset {
  manifest: Manifest;
  manifestBytes: Buffer;
  version: string;
  /** blob key → bytes, every object the manifest lists. */
  blobs: Map<string, Buffer>;
}

/**
 * A dataset version in the data pipeline's layout from images (JPEG bytes by id), captions
 * and splits: content-addressed blobs and a canonical manifest, so the same input always
 * gives the same version. Images in no split are "unsplit".
 */
export function datasetVersionOf(
  dataset: string,
  imageBytes: Map<string, Buffer>,
  captions: Record<string, string[]>,
  splits: { train: string[]; dev: string[]; test: string[] },
  params: Record<string, string | number>,
  sourceUrl: string,
  format: Partial<Manifest["image_format"]> = {},
): PublishableDataset {
  const blobs = new Map<string, Buffer>();
  const images: Manifest["images"] = {};
  for (const id of [...imageBytes.keys()].sort()) {
    const bytes = imageBytes.get(id)!;
    const sha = sha256Hex(bytes);
    const { width, height } = jpegSize(bytes);
    images[id] = { key: blobKey(dataset, sha), sha256: sha, size: bytes.length, width, height };
    blobs.set(blobKey(dataset, sha), bytes);
  }
  const ids = Object.keys(images);
  const caps: Record<string, string[]> = {};
  for (const id of ids) caps[id] = captions[id] ?? [];
  const inSet = (list: string[]) => list.filter((id) => id in images).sort();
  const sp = { train: inSet(splits.train), dev: inSet(splits.dev), test: inSet(splits.test) };
  const capBytes = Buffer.from(canonicalJson(caps));
  const splitBytes = Buffer.from(canonicalJson(sp));
  const ref = (b: Buffer) => {
    const sha = sha256Hex(b);
    blobs.set(blobKey(dataset, sha), b);
    return { key: blobKey(dataset, sha), sha256: sha, size: b.length };
  };
  const first = images[ids[0] ?? ""];
  const manifest: Manifest = {
    schema: MANIFEST_SCHEMA,
    dataset,
    params: { dataset, ...params },
    sources: [{ url: sourceUrl, sha256: sha256Hex(capBytes), bytes: capBytes.length }],
    image_format: {
      format: "jpeg",
      width: first?.width ?? 224,
      height: first?.height ?? 224,
      quality: 0,
      fit: "fill",
      kernel: "none",
      colorspace: "srgb",
      chroma_subsampling: "as-is",
      orientation: "as-is",
      metadata: "as-is",
      alpha: "none",
      max_input_pixels: 40_000_000,
      passthrough: "as-is",
      ...format,
    },
    counts: {
      images: ids.length,
      captions: Object.values(caps).reduce((n, c) => n + c.length, 0),
      train: sp.train.length,
      dev: sp.dev.length,
      test: sp.test.length,
      unsplit: ids.length - sp.train.length - sp.dev.length - sp.test.length,
    },
    captions: ref(capBytes),
    splits: ref(splitBytes),
    images,
  };
  const { bytes, version } = manifestBytes(manifest);
  return { manifest, manifestBytes: bytes, version, blobs };
}

/** Uploads a dataset version's blobs and manifest (idempotent); `latest.json` is moved separately. */
export async function uploadDataset(store: ObjectStore, ds: PublishableDataset): Promise<void> {
  if (await store.stat(manifestKey(ds.manifest.dataset, ds.version))) return;
  for (const [key, bytes] of ds.blobs) {
    const have = await store.stat(key);
    const json = key === ds.manifest.captions.key || key === ds.manifest.splits.key;
    if (have?.size !== bytes.length) await store.put(key, bytes, { contentType: json ? "application/json" : "image/jpeg" });
  }
  await putManifest(store, ds.manifest.dataset, ds.version, ds.manifestBytes);
}

/** Moves `latest.json` to the version (compare-and-swap); false when it already named it or lost a race. */
async function moveDemoLatest(store: ObjectStore, ds: PublishableDataset): Promise<boolean> {
  try {
    return (await moveLatest(store, ds.manifest.dataset, ds.version)).moved;
  } catch (err) {
    if (err instanceof PublishConflictError) return false;
    throw err;
  }
}

/** The demo gallery as a dataset version (deterministic: same pack, same version). */
function demoDataset(dir: string): PublishableDataset | undefined {
  const imgDir = join(dir, "images");
  if (!existsSync(join(dir, "captions.json")) || !existsSync(imgDir)) return undefined;
  const captions = JSON.parse(readFileSync(join(dir, "captions.json"), "utf8")) as Record<string, string[]>;
  const images = new Map<string, Buffer>();
  for (const f of readdirSync(imgDir).filter((f) => f.endsWith(".jpg")).sort()) images.set(f.slice(0, -4), readFileSync(join(imgDir, f)));
  // The demo pack is test-split images only.
  return datasetVersionOf(DEMO_DATASET, images, captions, { train: [], dev: [], test: [...images.keys()] }, { source: "demo-pack", split_mode: "official", dataset_size: "sample" }, "file:demo/", {
    kernel: "lanczos3",
    chroma_subsampling: "4:2:0",
    orientation: "exif-applied",
    metadata: "stripped",
  });
}

/** Width and height from a baseline/progressive JPEG's SOF marker. */
function jpegSize(b: Buffer): { width: number; height: number } {
  let i = 2;
  while (i + 9 < b.length) {
    if (b[i] !== 0xff) {
      i++;
      continue;
    }
    const marker = b[i + 1]!;
    const len = b.readUInt16BE(i + 2);
    if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) return { height: b.readUInt16BE(i + 5), width: b.readUInt16BE(i + 7) };
    i += 2 + len;
  }
  throw new Error("not a JPEG (no SOF marker)");
}

/** Seeds the store from the demo pack; see the module comment. */
export async function seedDemo(store: ObjectStore, dir: string, logger?: Logger): Promise<SeedResult> {
  const result: SeedResult = { promoted: false, published: false, indexCopied: false };
  await store.init();
  const model = readDemoModel(dir);
  const ds = demoDataset(dir);
  // Order matters to a server polling meanwhile: model files, gallery and index first, the
  // alias last, so the model is never promoted before its gallery can be served.
  if (model) {
    result.modelVersion = model.version;
    if (!(await store.stat(modelKey(model.version, "checksums.json")))) {
      for (const [f, bytes] of model.files) if (f !== "checksums.json") await store.put(modelKey(model.version, f), bytes, { contentType: contentType(f) });
      await store.put(modelKey(model.version, "checksums.json"), model.files.get("checksums.json")!, { contentType: "application/json" });
      logger?.info({ version: model.version }, "imported the demo model into the registry");
    }
  } else logger?.warn({ dir }, "demo pack has no model");

  if (ds) {
    result.datasetVersion = ds.version;
    await uploadDataset(store, ds);
    if (model) result.indexCopied = await copyDemoIndex(store, dir, model.version, ds.version);
    result.published = await moveDemoLatest(store, ds);
    if (result.published) logger?.info({ dataset: DEMO_DATASET, version: ds.version, images: ds.manifest.counts.images }, "published the demo gallery");
  } else logger?.warn({ dir }, "demo pack has no images");

  if (model && (await readAlias(store)) === undefined) {
    try {
      await writeAlias(store, model.version, { onlyIfMissing: true });
      result.promoted = true;
      logger?.info({ version: model.version, alias: ALIAS_KEY }, "no production model: promoted the demo model");
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err; // someone else promoted one meanwhile
    }
  }
  return result;
}

async function copyDemoIndex(store: ObjectStore, dir: string, modelVersion: string, datasetVersion: string): Promise<boolean> {
  const idir = join(dir, "index");
  if (!existsSync(join(idir, "index.json"))) return false;
  const doc = JSON.parse(readFileSync(join(idir, "index.json"), "utf8")) as IndexDocument;
  if (doc.model_version !== modelVersion || doc.dataset_version !== datasetVersion || doc.dataset !== DEMO_DATASET) return false;
  if (await readIndexDocument(store, modelVersion, DEMO_DATASET, datasetVersion)) return false;
  const prefix = indexPrefix(modelVersion, DEMO_DATASET, datasetVersion);
  for (const [name, ref] of Object.entries(doc.files)) {
    const bytes = readFileSync(join(idir, name));
    if (sha256Hex(bytes) !== ref.sha256) return false;
    await store.put(prefix + name, bytes, { contentType: "application/octet-stream" });
  }
  await store.put(prefix + "index.json", readFileSync(join(idir, "index.json")), { contentType: "application/json" });
  return true;
}

function contentType(f: string): string {
  const ext = f.slice(f.lastIndexOf(".") + 1);
  return { json: "application/json", png: "image/png", md: "text/markdown", onnx: "application/octet-stream" }[ext] ?? "application/octet-stream";
}
