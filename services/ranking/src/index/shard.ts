/**
 * Index Jobs: the index of one (model version, dataset version) pair, computed once by a set of
 * shard workers — the pods of a Kubernetes Indexed Job, or one child process of the embedded
 * Ranking — and stored for every replica to load. The pair may be a collection version
 * (dataset "collections/<id>"), whose build embeds only the photos an earlier version's index
 * lacks (index/plan.ts, collections/reuse.ts).
 *
 * The images to embed (in id order) are cut into chunks of CHUNK_IMAGES; shard i of N owns a
 * contiguous run of chunks. A chunk (its images' and their captions' embeddings) is stored as
 * soon as it is embedded, beside the index:
 *
 *   models/<m>/indexes/<dataset>/<version>/chunks/<first image, 7 digits>.bin
 *       u32 LE header length ‖ JSON header ‖ float32 image rows ‖ float32 caption rows
 *
 * so a worker that is stopped (a deleted or evicted pod) loses nothing stored, and its
 * replacement skips the chunks that are there. A stop request lets the chunk under way finish
 * and be stored first. The worker that finds every chunk stored assembles the index — the
 * embedded rows and the re-used ones, index.json last, as saveIndex always writes it — and
 * removes the chunks; two workers finishing at once write the same index.
 */
import { hostname } from "node:os";
import { PreconditionFailedError, type ObjectStore } from "@glimpse/objectstore";
import { nearDuplicates } from "../collections/duplicates.js";
import type { LoadedModel } from "../model/model.js";
import { embedCaptions, embedImages, galleryIndex } from "./build.js";
import type { IndexKindSetting } from "./gallery.js";
import { planBuild, type BuildPlan } from "./plan.js";
import { chunksPrefix, readIndexDocument, saveIndex, type IndexDocument } from "./store.js";

export { chunksPrefix };

/**
 * Images per stored chunk. Small: a stopping pod finishes its chunk well within its grace period
 * (a second or two of a CPU's work), and a deleted or evicted pod loses at most that much; a chunk
 * is still ~100 KB of embeddings, so a full Flickr8K gallery is 253 objects.
 */
export const CHUNK_IMAGES = 32;

const CHUNK_SCHEMA = "glimpse.index-chunk/v1";

export interface ChunkHeader {
  schema: typeof CHUNK_SCHEMA;
  model_version: string;
  dataset_version: string;
  dim: number;
  /** Offset of the first image among the images to embed (the gallery's, in id order), and how many images. */
  first: number;
  count: number;
  first_id: string;
  last_id: string;
  captions: number;
  shard: number;
  /** Who embedded it (the pod's name on Kubernetes). */
  worker: string;
}

/** What the index document's `build` records of an index Job. */
export interface JobRecord {
  job: string;
  shards: number;
  chunk_images: number;
  chunks: { first: number; count: number; shard: number; pod: string }[];
  /** Images embedded by the Job, summed over its chunks: the images to embed when each was embedded once. */
  images_embedded: number;
  /** Images whose embeddings came from an earlier version's index (`reused_from`) instead. */
  images_reused: number;
  reused_from?: string;
}
const chunkName = (first: number) => `${String(first).padStart(7, "0")}.bin`;

/** The chunks (by first image) shard `shard` of `shards` owns, for a gallery of `images` images. */
export function shardChunks(images: number, shard: number, shards: number): number[] {
  const chunks = Math.ceil(images / CHUNK_IMAGES);
  const lo = Math.floor((shard * chunks) / shards);
  const hi = Math.floor(((shard + 1) * chunks) / shards);
  const out: number[] = [];
  for (let c = lo; c < hi; c++) out.push(c * CHUNK_IMAGES);
  return out;
}

export function encodeChunk(header: ChunkHeader, images: Float32Array, captions: Float32Array): Buffer {
  const h = Buffer.from(JSON.stringify(header), "utf8");
  const len = Buffer.alloc(4);
  len.writeUInt32LE(h.length);
  const f32 = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  return Buffer.concat([len, h, f32(images), f32(captions)]);
}

export function decodeChunk(b: Buffer): { header: ChunkHeader; images: Float32Array; captions: Float32Array } {
  const hl = b.readUInt32LE(0);
  const header = JSON.parse(b.subarray(4, 4 + hl).toString("utf8")) as ChunkHeader;
  if (header.schema !== CHUNK_SCHEMA) throw new Error(`unsupported chunk schema ${header.schema}`);
  const body = b.subarray(4 + hl);
  const want = (header.count + header.captions) * header.dim * 4;
  if (body.length !== want) throw new Error(`chunk at ${header.first}: ${body.length} bytes, expected ${want}`);
  // copy: the rows must be 4-byte aligned
  const all = new Float32Array(new Uint8Array(body).buffer);
  return { header, images: all.subarray(0, header.count * header.dim), captions: all.subarray(header.count * header.dim) };
}

export interface ShardOptions {
  store: ObjectStore;
  /** Loaded on first need: a worker whose chunks are all stored never loads the model to embed. */
  model: () => Promise<LoadedModel>;
  modelVersion: string;
  dataset: string;
  datasetVersion: string;
  shard: number;
  shards: number;
  kind?: IndexKindSetting;
  /** The Job's name, recorded in the index (empty for the embedded default's worker). */
  job?: string;
  /** This worker's name (default: the host name; on Kubernetes the CLI passes the pod's name, GLIMPSE_POD_NAME). */
  worker?: string;
  imageBatch?: number;
  /** Checked between chunks: true = store nothing more, return `stopped`. */
  stopping?: () => boolean;
  log?: (msg: string, fields: Record<string, unknown>) => void;
}

export interface ShardResult {
  /** The index exists now (this worker or another assembled it). */
  assembled: boolean;
  /** Chunks this worker embedded and stored. */
  embedded: number;
  /** Images in those chunks. */
  images: number;
  /** A stop request ended the shard before its chunks were all stored. */
  stopped: boolean;
  document?: IndexDocument;
}

/** Runs one shard worker: embeds and stores the shard's missing chunks, then assembles the index if every chunk is stored. */
export async function runShard(opts: ShardOptions): Promise<ShardResult> {
  const { store, modelVersion, dataset, datasetVersion, shard, shards } = opts;
  const log = opts.log ?? (() => {});
  const worker = opts.worker ?? hostname();
  if (!(Number.isInteger(shards) && shards >= 1 && Number.isInteger(shard) && shard >= 0 && shard < shards)) throw new Error(`shard ${shard} of ${shards} is not a shard`);
  const existing = await readIndexDocument(store, modelVersion, dataset, datasetVersion);
  if (existing) return { assembled: true, embedded: 0, images: 0, stopped: false, document: existing };

  const plan = await planBuild(store, modelVersion, dataset, datasetVersion);
  const { embed } = plan;
  const prefix = chunksPrefix(modelVersion, dataset, datasetVersion);
  let model: LoadedModel | undefined;
  let embedded = 0;
  let images = 0;
  const mine = shardChunks(embed.ids.length, shard, shards);
  log("shard started", { shard, shards, chunks: mine.length, gallery_images: plan.src.ids.length, to_embed: embed.ids.length, reused: plan.reused?.rows.length ?? 0, worker });
  for (const first of mine) {
    if (opts.stopping?.()) return { assembled: false, embedded, images, stopped: true };
    const key = prefix + chunkName(first);
    if (await store.stat(key)) continue;
    model ??= await opts.model();
    if (model.version !== modelVersion) throw new Error(`the model loaded is ${model.version}, not ${modelVersion}`);
    const last = Math.min(first + CHUNK_IMAGES, embed.ids.length);
    const t0 = performance.now();
    const imageEmb = await embedImages(store, model, embed, first, last, { imageBatch: opts.imageBatch ?? 8 });
    const texts = embed.imageCaptions.slice(first, last).flat();
    const captionEmb = await embedCaptions(model, texts);
    const header: ChunkHeader = {
      schema: CHUNK_SCHEMA, model_version: modelVersion, dataset_version: datasetVersion, dim: model.dim,
      first, count: last - first, first_id: embed.ids[first]!, last_id: embed.ids[last - 1]!, captions: texts.length, shard, worker,
    };
    try {
      // create-only: a chunk is written once; another worker's copy of it stays
      await store.put(key, encodeChunk(header, imageEmb, captionEmb), { contentType: "application/octet-stream", ifNoneMatch: "*" });
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
      log("chunk already stored by another worker", { first });
      continue;
    }
    embedded++;
    images += last - first;
    log("chunk stored", { first, count: last - first, captions: texts.length, ms: Math.round(performance.now() - t0), shard, worker });
  }
  const document = await assembleIfComplete(opts, plan, worker, model);
  return { assembled: document !== undefined, embedded, images, stopped: false, ...(document ? { document } : {}) };
}

/**
 * When every chunk is stored: the index, assembled, stored and returned (the chunks removed).
 * The model is loaded only when nothing tells the embeddings' width (an empty index): assembling
 * computes no embedding.
 */
async function assembleIfComplete(opts: ShardOptions, plan: BuildPlan, worker: string, model: LoadedModel | undefined): Promise<IndexDocument | undefined> {
  const { store, modelVersion, dataset, datasetVersion } = opts;
  const { src, embed, reused } = plan;
  const prefix = chunksPrefix(modelVersion, dataset, datasetVersion);
  const stored = new Set<string>();
  for await (const o of store.list(prefix)) stored.add(o.key.slice(prefix.length));
  const firsts = shardChunks(embed.ids.length, 0, 1);
  if (!firsts.every((f) => stored.has(chunkName(f)))) return undefined;
  const again = await readIndexDocument(store, modelVersion, dataset, datasetVersion);
  if (again) return again;

  const parts: ReturnType<typeof decodeChunk>[] = [];
  for (const first of firsts) {
    const c = decodeChunk(await store.getBuffer(prefix + chunkName(first)));
    const h = c.header;
    const last = Math.min(first + CHUNK_IMAGES, embed.ids.length);
    if (h.model_version !== modelVersion || h.dataset_version !== datasetVersion || h.first !== first || h.count !== last - first || h.first_id !== embed.ids[first] || h.last_id !== embed.ids[last - 1]) {
      throw new Error(`chunk at ${first} does not belong to this gallery (${h.model_version} ${h.dataset_version} ${h.first}+${h.count})`);
    }
    parts.push(c);
  }
  const dim = parts[0]?.header.dim ?? reused?.dim ?? (model ??= await opts.model()).dim;
  for (const p of parts) if (p.header.dim !== dim) throw new Error(`chunk at ${p.header.first} has ${p.header.dim}-d rows, others ${dim}-d`);
  if (reused && reused.dim !== dim) throw new Error(`the re-used index of ${reused.fromVersion} has ${reused.dim}-d rows, the chunks ${dim}-d`);

  // every row in source order: the re-used ones, then the embedded ones where they belong
  const imageEmb = new Float32Array(src.ids.length * dim);
  reused?.rows.forEach((row, j) => imageEmb.set(reused.emb.subarray(j * dim, (j + 1) * dim), row * dim));
  const rowOf = embed === src ? undefined : new Map(src.ids.map((id, row) => [id, row]));
  for (const p of parts) {
    for (let i = 0; i < p.header.count; i++) {
      const at = p.header.first + i;
      imageEmb.set(p.images.subarray(i * dim, (i + 1) * dim), (rowOf ? rowOf.get(embed.ids[at]!)! : at) * dim);
    }
  }
  const captionEmb = cat(parts.map((p) => p.captions));
  const index = await galleryIndex({ version: modelVersion, dim, queryBank: undefined }, src, imageEmb, captionEmb, plan.collection ? "exact" : (opts.kind ?? "auto"));
  const record: JobRecord = {
    job: opts.job ?? "",
    shards: opts.shards,
    chunk_images: CHUNK_IMAGES,
    chunks: parts.map((p) => ({ first: p.header.first, count: p.header.count, shard: p.header.shard, pod: p.header.worker })),
    images_embedded: parts.reduce((n, p) => n + p.header.count, 0),
    images_reused: reused?.rows.length ?? 0,
    ...(reused ? { reused_from: reused.fromVersion } : {}),
  };
  const extras = plan.collection ? { near_duplicates: await nearDuplicates(src.ids, imageEmb, dim) } : {};
  const doc = await saveIndex(store, index, { ...record, assembled_by: worker, ...(model ? { provider: model.encoders.provider } : {}) }, extras);
  // the chunks, and what else the build kept beside them (a collection build's plan)
  for await (const o of store.list(prefix)) await store.delete(o.key).catch(() => {});
  opts.log?.("index assembled and stored", { images: index.images, captions: index.captions, chunks: parts.length, reused: record.images_reused });
  return doc;
}

function cat(xs: Float32Array[]): Float32Array {
  const out = new Float32Array(xs.reduce((n, x) => n + x.length, 0));
  let at = 0;
  for (const x of xs) {
    out.set(x, at);
    at += x.length;
  }
  return out;
}
