/**
 * The published layout in the object store (the contract with the model trainer and the
 * Data service; see README.md):
 *
 *   datasets/<dataset>/latest.json                      → LatestPointer (written last, conditionally)
 *   datasets/<dataset>/versions/<version>/manifest.json → Manifest (immutable)
 *   datasets/<dataset>/blobs/sha256/<hex>               → images, captions and splits (content-addressed)
 */

import { createHash } from "node:crypto";
import type { ObjectStore } from "@glimpse/objectstore";

/** The dataset a request without one names. */
export const DEFAULT_DATASET = "flickr8k";

export const MANIFEST_SCHEMA = "glimpse.dataset.manifest/v1";

export const DATASETS_PREFIX = "datasets/";
export const latestKey = (dataset: string): string => `datasets/${dataset}/latest.json`;
export const versionsPrefix = (dataset: string): string => `datasets/${dataset}/versions/`;
export const manifestKey = (dataset: string, version: string): string => `datasets/${dataset}/versions/${version}/manifest.json`;
export const blobsPrefix = (dataset: string): string => `datasets/${dataset}/blobs/sha256/`;
export const blobKey = (dataset: string, sha256: string): string => `datasets/${dataset}/blobs/sha256/${sha256}`;

/** `latest.json`. */
export interface LatestPointer {
  version: string;
  manifest: string;
  /** ISO 8601. */
  published_at: string;
}

export interface ObjectRef {
  key: string;
  sha256: string;
  size: number;
}

export interface ImageRef extends ObjectRef {
  width: number;
  height: number;
}

export interface SourceRef {
  url: string;
  sha256: string;
  bytes: number;
}

export interface ImageFormat {
  format: "jpeg";
  width: number;
  height: number;
  quality: number;
  fit: "fill";
  kernel: string;
  colorspace: "srgb";
  chroma_subsampling: string;
  orientation: string;
  metadata: string;
  alpha: string;
  max_input_pixels: number;
  /** "conforming-jpeg": an input already in this format is published byte for byte; "never". */
  passthrough: string;
}

export interface Counts {
  images: number;
  captions: number;
  train: number;
  dev: number;
  test: number;
  /** Images in no split (Flickr8K: 91). */
  unsplit: number;
}

/** `manifest.json`: no timestamps, so the same inputs give the same bytes and version. */
export interface Manifest {
  schema: typeof MANIFEST_SCHEMA;
  dataset: string;
  params: Record<string, string | number>;
  sources: SourceRef[];
  image_format: ImageFormat;
  counts: Counts;
  captions: ObjectRef;
  splits: ObjectRef;
  images: Record<string, ImageRef>;
}

/** `splits.json` (image ids sorted). */
export interface Splits {
  train: string[];
  dev: string[];
  test: string[];
}

export const SPLIT_NAMES = ["train", "dev", "test"] as const;
export type SplitName = (typeof SPLIT_NAMES)[number];

/** The version id: the first 16 hex digits of the manifest bytes' sha256. */
export const VERSION_RE = /^[0-9a-f]{16}$/;

/** Hex sha256: what content-addressed keys and versions are made of. */
export const sha256Hex = (b: Uint8Array | string): string => createHash("sha256").update(b).digest("hex");

export interface PublishedDataset {
  version: string;
  manifestKey: string;
  manifest: Manifest;
  /** The pointer, when the version was resolved through latest.json. */
  latest?: LatestPointer;
}

/**
 * Reads a published version (default: the one latest.json names) and checks that the
 * manifest's bytes hash to its version.
 */
export async function readPublished(store: ObjectStore, dataset: string, version?: string): Promise<PublishedDataset> {
  let latest: LatestPointer | undefined;
  let key: string;
  if (version === undefined) {
    latest = JSON.parse((await store.getBuffer(latestKey(dataset))).toString("utf8")) as LatestPointer;
    version = latest.version;
    key = latest.manifest;
  } else key = manifestKey(dataset, version);
  if (!VERSION_RE.test(version)) throw new Error(`bad version ${JSON.stringify(version)}`);
  const bytes = await store.getBuffer(key);
  if (sha256Hex(bytes).slice(0, 16) !== version) throw new Error(`manifest ${key} does not hash to version ${version}`);
  const manifest = JSON.parse(bytes.toString("utf8")) as Manifest;
  if (manifest.schema !== MANIFEST_SCHEMA) throw new Error(`unexpected manifest schema ${manifest.schema}`);
  return latest ? { version, manifestKey: key, manifest, latest } : { version, manifestKey: key, manifest };
}

/** Reads and checks one object the manifest lists. */
export async function readBlob(store: ObjectStore, ref: { key: string; sha256: string }): Promise<Buffer> {
  const b = await store.getBuffer(ref.key);
  if (sha256Hex(b) !== ref.sha256) throw new Error(`sha256 mismatch for ${ref.key}`);
  return b;
}

export async function readCaptions(store: ObjectStore, m: Manifest): Promise<Record<string, string[]>> {
  return JSON.parse((await readBlob(store, m.captions)).toString("utf8")) as Record<string, string[]>;
}

export async function readSplits(store: ObjectStore, m: Manifest): Promise<Splits> {
  return JSON.parse((await readBlob(store, m.splits)).toString("utf8")) as Splits;
}

export interface LatestState {
  /** undefined when latest.json exists but is not valid JSON (it will be replaced). */
  pointer?: LatestPointer;
  /** The etag a compare-and-swap of the pointer is conditioned on. */
  etag: string;
}

/** A dataset's `latest.json`, or undefined when nothing is published yet. */
export async function readLatest(store: ObjectStore, dataset: string): Promise<LatestState | undefined> {
  const key = latestKey(dataset);
  // stat before get: the pointer read is at least as new as the etag, so a race can only make
  // the later conditional write fail, never overwrite a change we did not see.
  const info = await store.stat(key);
  if (!info) return undefined;
  try {
    return { pointer: JSON.parse((await store.getBuffer(key)).toString("utf8")) as LatestPointer, etag: info.etag };
  } catch (err) {
    if (err instanceof SyntaxError) return { etag: info.etag };
    throw err;
  }
}
