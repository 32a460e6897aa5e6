/**
 * Gallery indexes in the object store, beside the model version they were built with:
 *
 *   models/<model version>/indexes/<dataset>/<dataset version>/images.f32    float32 [images, dim], little-endian
 *   models/<model version>/indexes/<dataset>/<dataset version>/captions.f32  float32 [captions, dim]
 *   models/<model version>/indexes/<dataset>/<dataset version>/hnsw.usearch  optional HNSW graph (usearch format)
 *   models/<model version>/indexes/<dataset>/<dataset version>/index.json    written last: ids, splits, captions, sha256s
 *
 * A reader that finds index.json finds every file it lists, and checks their sha256.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { manifestKey } from "@glimpse/layout/datasets";
import { indexesPrefix, indexPrefix } from "@glimpse/layout/models";
import { ObjectNotFoundError, type ObjectStore } from "@glimpse/objectstore";
import type { NearDuplicates } from "../collections/duplicates.js";
import type { QueryBank } from "../model/querybank.js";
import { DEFAULT_HNSW, GalleryIndex, resolveIndexKind, type GalleryData, type HnswParams, type HnswQuantization, type IndexKindSetting, type SplitNumber } from "./gallery.js";
import { toF32 } from "./topk.js";

export const INDEX_SCHEMA = "glimpse.index/v1";

/** models/<model version>/indexes/<dataset or "collections/<id>">/<version>/ (@glimpse/layout: the one home of store keys). */
export { indexPrefix };

/** Where an index Job's workers store what they embedded until the index is assembled (index/shard.ts). */
export const chunksPrefix = (modelVersion: string, dataset: string, datasetVersion: string): string =>
  `${indexPrefix(modelVersion, dataset, datasetVersion)}chunks/`;

interface FileRef {
  sha256: string;
  size: number;
}

export interface IndexDocument {
  schema: typeof INDEX_SCHEMA;
  model_version: string;
  dataset: string;
  dataset_version: string;
  dim: number;
  built_at: string;
  images: { count: number; ids: string[]; splits: number[]; captions: string[][] };
  captions: { count: number };
  files: Record<string, FileRef>;
  /**
   * The stored graph and how it was built (no quantization: an f32 graph, as before it was
   * recorded); expansion_search is the ef_search it was built for — searches use today's.
   */
  hnsw?: { file: string; quantization?: HnswQuantization; connectivity: number; expansion_add: number; expansion_search: number };
  build?: Record<string, unknown>;
  /** A collection's near-duplicate photos, found when the index was assembled. */
  near_duplicates?: NearDuplicates;
}

/** What an index document holds beside the index itself (kept when an index is stored again). */
export type IndexExtras = Pick<IndexDocument, "near_duplicates">;
export const extrasOf = (doc: IndexDocument): IndexExtras => (doc.near_duplicates ? { near_duplicates: doc.near_duplicates } : {});

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const f32Bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Stores an index; index.json goes last. */
export async function saveIndex(store: ObjectStore, idx: GalleryIndex, build: Record<string, unknown> = {}, extras: IndexExtras = {}): Promise<IndexDocument> {
  const d = idx.data;
  const prefix = indexPrefix(d.modelVersion, d.dataset, d.datasetVersion);
  const blobs: Record<string, Buffer> = { "images.f32": f32Bytes(d.imageEmb), "captions.f32": f32Bytes(d.captionEmb) };
  if (idx.kind === "hnsw") blobs["hnsw.usearch"] = idx.hnswBytes();
  const files: Record<string, FileRef> = {};
  for (const [name, bytes] of Object.entries(blobs)) {
    await store.put(prefix + name, bytes, { contentType: "application/octet-stream" });
    files[name] = { sha256: sha256(bytes), size: bytes.length };
  }
  const doc: IndexDocument = {
    schema: INDEX_SCHEMA,
    model_version: d.modelVersion,
    dataset: d.dataset,
    dataset_version: d.datasetVersion,
    dim: d.dim,
    built_at: d.builtAt.toISOString(),
    images: { count: d.imageIds.length, ids: d.imageIds, splits: [...d.imageSplits], captions: d.imageCaptions },
    captions: { count: idx.captions },
    files,
    build,
    ...extras,
  };
  const hnsw = idx.hnswParams;
  if (idx.kind === "hnsw" && hnsw) doc.hnsw = { file: "hnsw.usearch", quantization: hnsw.quantization, connectivity: hnsw.connectivity, expansion_add: hnsw.expansionAdd, expansion_search: hnsw.expansionSearch };
  await store.put(prefix + "index.json", JSON.stringify(doc), { contentType: "application/json" });
  return doc;
}

/** The index document, or undefined when no complete index is stored. */
export async function readIndexDocument(store: ObjectStore, modelVersion: string, dataset: string, datasetVersion: string): Promise<IndexDocument | undefined> {
  try {
    const doc = JSON.parse((await store.getBuffer(indexPrefix(modelVersion, dataset, datasetVersion) + "index.json")).toString("utf8")) as IndexDocument;
    if (doc.schema !== INDEX_SCHEMA) throw new Error(`unsupported index schema ${doc.schema}`);
    return doc;
  } catch (err) {
    if (err instanceof ObjectNotFoundError) return undefined;
    throw err;
  }
}

/** True when the pair's index is stored (its index.json, written last, is there). */
export async function indexStored(store: ObjectStore, modelVersion: string, dataset: string, datasetVersion: string): Promise<boolean> {
  return (await store.stat(indexPrefix(modelVersion, dataset, datasetVersion) + "index.json")) !== undefined;
}

/** The versions of `dataset` (a dataset or "collections/<id>") with a stored index for the model, in no order. */
export async function indexedVersions(store: ObjectStore, modelVersion: string, dataset: string): Promise<string[]> {
  const parent = `${indexesPrefix(modelVersion)}${dataset}/`;
  const out: string[] = [];
  let pageToken: string | undefined;
  do {
    const page = await store.listPage(parent, { delimiter: "/", ...(pageToken ? { pageToken } : {}) });
    for (const p of page.prefixes) {
      const version = p.slice(parent.length, -1);
      if (await indexStored(store, modelVersion, dataset, version)) out.push(version);
    }
    pageToken = page.nextPageToken;
  } while (pageToken);
  return out;
}

/** The versions of `dataset` with a stored index for the model, the most recently published first. */
export async function storedVersions(store: ObjectStore, modelVersion: string, dataset: string): Promise<string[]> {
  const found: { version: string; published: number }[] = [];
  for (const version of await indexedVersions(store, modelVersion, dataset)) {
    const manifest = await store.stat(manifestKey(dataset, version));
    if (manifest) found.push({ version, published: manifest.lastModified.getTime() });
  }
  return found.sort((a, b) => b.published - a.published || (a.version < b.version ? 1 : -1)).map((f) => f.version);
}

/**
 * Loads a stored index (undefined if none). With kind "hnsw" (or "auto" on a large gallery) the
 * stored graph is used, or built from the embeddings when the index has none (call saveIndex to keep it).
 */
export async function loadIndex(
  store: ObjectStore,
  modelVersion: string,
  dataset: string,
  datasetVersion: string,
  setting: IndexKindSetting = "exact",
  /** The model's query bank: the biases are computed from the stored embeddings on load. */
  queryBank?: QueryBank,
): Promise<{ index: GalleryIndex; doc: IndexDocument; graphBuilt: boolean } | undefined> {
  const doc = await readIndexDocument(store, modelVersion, dataset, datasetVersion);
  if (!doc) return undefined;
  const prefix = indexPrefix(modelVersion, dataset, datasetVersion);
  const get = async (name: string) => {
    const ref = doc.files[name];
    if (!ref) throw new Error(`index.json lists no ${name}`);
    const b = await store.getBuffer(prefix + name);
    if (b.length !== ref.size || sha256(b) !== ref.sha256) throw new Error(`index file ${prefix}${name} does not match its sha256`);
    return b;
  };
  const data: GalleryData = {
    modelVersion,
    dataset,
    datasetVersion,
    dim: doc.dim,
    builtAt: new Date(doc.built_at),
    imageIds: doc.images.ids,
    imageSplits: Uint8Array.from(doc.images.splits as SplitNumber[]),
    imageCaptions: doc.images.captions,
    imageEmb: toF32(await get("images.f32")),
    captionEmb: toF32(await get("captions.f32")),
  };
  const index = new GalleryIndex(data);
  await index.applyQueryBank(queryBank);
  let graphBuilt = false;
  if (resolveIndexKind(setting, index.images) === "hnsw") {
    // A stored graph is searched as it was built, with today's ef_search (a search-time setting).
    const params: HnswParams = doc.hnsw
      ? { quantization: doc.hnsw.quantization ?? "f32", connectivity: doc.hnsw.connectivity, expansionAdd: doc.hnsw.expansion_add, expansionSearch: DEFAULT_HNSW.expansionSearch }
      : DEFAULT_HNSW;
    if (doc.hnsw && doc.files[doc.hnsw.file]) {
      const dir = mkdtempSync(join(tmpdir(), "glimpse-hnsw-"));
      try {
        const f = join(dir, "graph.usearch");
        writeFileSync(f, await get(doc.hnsw.file));
        index.useHnsw(params, f);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    } else {
      index.useHnsw(params);
      graphBuilt = true;
    }
  }
  return { index, doc, graphBuilt };
}
