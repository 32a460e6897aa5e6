/**
 * Collection versions for tests, published as the Data service publishes a sync: each photo
 * ingested by the pipeline's ingestPhoto (its normalised copy — normalizeImage's, what a
 * Flickr8K gallery image is — stored as the blob to embed), the manifest, then latest.json.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { COLLECTION_MANIFEST_SCHEMA, collectionBlobKey, publishCollectionVersion, type CollectionManifest, type CollectionPhoto } from "@glimpse/layout";
import type { ObjectStore } from "@glimpse/objectstore";
import { ingestPhoto } from "@glimpse/pipeline";
import { DEFAULT_DEMO_DIR } from "../seed.js";

export interface TestPhoto {
  /** The original file. */
  bytes: Buffer;
  path: string;
  /** ISO 8601; default the EXIF date, else 2024-01-01. */
  taken_time?: string;
  camera_model?: string;
  duplicate_paths?: string[];
}

/** The demo pack's image ids (Flickr8K test images), sorted. */
export const demoImageIds = (demoDir = DEFAULT_DEMO_DIR): string[] =>
  readdirSync(join(demoDir, "images")).filter((f) => f.endsWith(".jpg")).sort().map((f) => f.slice(0, -4));

/** A demo-pack image as a photo at `path`. */
export function demoPhoto(imageId: string, extra: Partial<TestPhoto> = {}, demoDir = DEFAULT_DEMO_DIR): TestPhoto {
  return { bytes: readFileSync(join(demoDir, "images", `${imageId}.jpg`)), path: `${imageId}.jpg`, ...extra };
}

export const photoIdOf = (bytes: Buffer): string => createHash("sha256").update(bytes).digest("hex").slice(0, 16);

/** Publishes a version of collection `id` holding `photos` (synced from `previous`); returns the version. */
export async function publishPhotos(store: ObjectStore, id: string, photos: TestPhoto[], previous = ""): Promise<string> {
  const out: CollectionPhoto[] = [];
  for (const p of photos) {
    const r = await ingestPhoto(p.bytes);
    if (!r.ok) throw new Error(`${p.path}: ${r.reason}: ${r.message}`);
    const imageSha = createHash("sha256").update(r.normalized).digest("hex");
    const image = { key: collectionBlobKey(id, imageSha), sha256: imageSha, size: r.normalized.length };
    await store.put(image.key, r.normalized, { contentType: "image/jpeg" });
    out.push({
      photo_id: r.photoId,
      sha256: r.sha256,
      path: p.path,
      duplicate_paths: p.duplicate_paths ?? [],
      size: r.sizeBytes,
      width: r.width,
      height: r.height,
      taken_time: p.taken_time ?? r.takenTime?.toISOString() ?? "2024-01-01T00:00:00.000Z",
      camera_model: p.camera_model ?? r.cameraModel,
      image,
    });
  }
  out.sort((a, b) => (a.photo_id < b.photo_id ? -1 : 1));
  const exact = out.reduce((n, p) => n + p.duplicate_paths.length, 0);
  const manifest: CollectionManifest = {
    schema: COLLECTION_MANIFEST_SCHEMA,
    collection: id,
    image_format: "jpeg 224x224 q90 fill",
    previous_version: previous,
    photos: out,
    skipped: [],
    counts: { found: out.length + exact, indexed: out.length, skipped: 0, exact_duplicates: exact, skipped_by_reason: {} },
  };
  return publishCollectionVersion(store, manifest);
}
