/**
 * The published layout in the object store (the contract with the model trainer and the
 * Data service; see README.md):
 *
 *   datasets/<dataset>/latest.json                      → LatestPointer (written last, conditionally)
 *   datasets/<dataset>/versions/<version>/manifest.json → Manifest (immutable)
 *   datasets/<dataset>/blobs/sha256/<hex>               → images, captions and splits (content-addressed)
 */

export const MANIFEST_SCHEMA = "glimpse.dataset.manifest/v1";

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
