/**
 * The model registry in the object store (written by the trainer's exporter, read by Ranking and
 * Training), and the gallery and collection indexes Ranking stores beside each model:
 *
 *   models/<version>/{image_encoder.onnx, text_encoder.onnx, vocab.json, preprocess.json,
 *                     config.json, metrics.json, model_card.md, golden.json, …, checksums.json}
 *                                        checksums.json = {"<file>": "<sha256>"}, written last
 *   models/aliases/production.json     → {"version": "m-…", "previous": ["m-…", …]}
 *   models/<version>/indexes/<gallery>/<gallery version>/…   a dataset's ("flickr8k") or a
 *                                        collection's ("collections/<id>") index, index.json last
 */
import type { ObjectStore } from "@glimpse/objectstore";

export const MODELS_PREFIX = "models/";
export const ALIAS_KEY = `${MODELS_PREFIX}aliases/production.json`;
/** Written last by the exporter: a version is registered once it exists. */
export const CHECKSUMS_FILE = "checksums.json";
const MODEL_VERSION_RE = /^m-[0-9a-f]{16}$/;

export const modelKey = (version: string, file: string): string => `${MODELS_PREFIX}${version}/${file}`;
export const indexesPrefix = (modelVersion: string): string => `${MODELS_PREFIX}${modelVersion}/indexes/`;
export const indexPrefix = (modelVersion: string, gallery: string, galleryVersion: string): string => `${indexesPrefix(modelVersion)}${gallery}/${galleryVersion}/`;
/** The gallery name of a collection's indexes. */
export const collectionGallery = (collectionId: string): string => `collections/${collectionId}`;

/** True once the export finished uploading the version. */
export async function modelRegistered(store: ObjectStore, version: string): Promise<boolean> {
  return MODEL_VERSION_RE.test(version) && (await store.stat(modelKey(version, CHECKSUMS_FILE))) !== undefined;
}

/** Every version folder under models/ (registered or still uploading), in key order. */
export async function* modelVersionFolders(store: ObjectStore): AsyncGenerator<string> {
  let pageToken: string | undefined;
  do {
    const page = await store.listPage(MODELS_PREFIX, { delimiter: "/", ...(pageToken ? { pageToken } : {}) });
    for (const p of page.prefixes) {
      const v = p.slice(MODELS_PREFIX.length, -1);
      if (MODEL_VERSION_RE.test(v)) yield v;
    }
    pageToken = page.nextPageToken;
  } while (pageToken);
}
