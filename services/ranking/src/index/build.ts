/**
 * The index job: embeds every image and every caption of a published dataset version with
 * one model version, in batches, reporting progress, and stores the result beside the model.
 * Used by the BuildIndex RPC and the `glimpse-ranking index` CLI; index Jobs (index/shard.ts)
 * embed slices of the same gallery with the same functions.
 */
import type { ObjectStore } from "@glimpse/objectstore";
import { readBlob, readCaptions, readPublished, readSplits } from "@glimpse/layout/datasets";
import type { LoadedModel } from "../model/model.js";
import type { DecodedPixels } from "../model/preprocess.js";
import { GalleryIndex, SPLIT, resolveIndexKind, type IndexKindSetting, type SplitNumber } from "./gallery.js";
import { saveIndex } from "./store.js";

export type BuildStage = "images" | "captions" | "upload" | "done";

export interface BuildProgress {
  stage: BuildStage;
  done: number;
  total: number;
}

export interface BuildOptions {
  store: ObjectStore;
  model: LoadedModel;
  dataset: string;
  /** undefined = the dataset's latest version. */
  datasetVersion?: string | undefined;
  kind?: IndexKindSetting;
  /** Images per encoder run (default 16). */
  imageBatch?: number;
  /** Captions per encoder run (default 256). */
  captionBatch?: number;
  /** Images fetched and decoded at once (default 8). */
  concurrency?: number;
  onProgress?: (p: BuildProgress) => void;
  signal?: AbortSignal;
  /** Store the result (default true). */
  save?: boolean;
}

export interface BuildResult {
  index: GalleryIndex;
  seconds: number;
}

/**
 * What an index is made of: a published version's images in id order, their captions and
 * splits. A dataset version (readGallerySource) or a collection version (collections/source.ts,
 * no captions, no splits).
 */
export interface GallerySource {
  dataset: string;
  datasetVersion: string;
  /** The blob each row embeds, by id (a dataset manifest's `images`, a collection's normalised copies). */
  images: Record<string, { key: string; sha256: string }>;
  /** Image ids, sorted: the rows of the index. */
  ids: string[];
  /** Captions of each image, in `ids` order. */
  imageCaptions: string[][];
  imageSplits: Uint8Array;
}

export async function readGallerySource(store: ObjectStore, dataset: string, datasetVersion?: string): Promise<GallerySource> {
  const published = await readPublished(store, dataset, datasetVersion);
  const m = published.manifest;
  const [captions, splits] = await Promise.all([readCaptions(store, m), readSplits(store, m)]);
  const splitOf = new Map<string, SplitNumber>();
  for (const id of splits.train) splitOf.set(id, SPLIT.train);
  for (const id of splits.dev) splitOf.set(id, SPLIT.dev);
  for (const id of splits.test) splitOf.set(id, SPLIT.test);
  const ids = Object.keys(m.images).sort();
  return {
    dataset,
    datasetVersion: published.version,
    images: m.images,
    ids,
    imageCaptions: ids.map((id) => captions[id] ?? []),
    imageSplits: Uint8Array.from(ids.map((id) => splitOf.get(id) ?? SPLIT.unspecified)),
  };
}

export interface EmbedOptions {
  imageBatch?: number;
  concurrency?: number;
  signal?: AbortSignal | undefined;
  /** Called after each encoder run with the images embedded so far. */
  onBatch?: (done: number) => void;
}

/** Embeds images `from`..`to` (exclusive) of the source; fetch + decode of one batch overlaps the encoder run of the previous. */
export async function embedImages(store: ObjectStore, model: LoadedModel, src: GallerySource, from: number, to: number, opts: EmbedOptions = {}): Promise<Float32Array> {
  const dim = model.dim;
  const out = new Float32Array((to - from) * dim);
  const batch = opts.imageBatch ?? 16;
  const conc = opts.concurrency ?? 8;
  const decode = async (start: number): Promise<DecodedPixels[]> => {
    const slice = src.ids.slice(start, Math.min(start + batch, to));
    const pixels: DecodedPixels[] = new Array(slice.length);
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(conc, slice.length) }, async () => {
        while (next < slice.length) {
          const i = next++;
          const id = slice[i]!;
          opts.signal?.throwIfAborted();
          const bytes = await readBlob(store, src.images[id]!);
          try {
            pixels[i] = await model.preprocessor.fromEncoded(bytes);
          } catch (err) {
            throw new Error(`image ${id} of ${src.dataset} ${src.datasetVersion}: ${(err as Error).message}`);
          }
        }
      }),
    );
    return pixels;
  };
  let pending = from < to ? decode(from) : undefined;
  for (let start = from; start < to; start += batch) {
    const pixels = await pending!;
    pending = start + batch < to ? decode(start + batch) : undefined;
    pending?.catch(() => {}); // surfaced when awaited
    opts.signal?.throwIfAborted();
    out.set(await model.embedPixels(pixels), (start - from) * dim);
    opts.onBatch?.(Math.min(start + batch, to) - from);
  }
  return out;
}

/** Embeds texts in chunks of many encoder runs each, so progress moves and an abort is noticed. */
export async function embedCaptions(model: LoadedModel, texts: string[], opts: { captionBatch?: number; signal?: AbortSignal | undefined; onChunk?: (done: number) => void } = {}): Promise<Float32Array> {
  const out = new Float32Array(texts.length * model.dim);
  const cb = opts.captionBatch ?? 256;
  const chunk = cb * 8;
  for (let from = 0; from < texts.length; from += chunk) {
    opts.signal?.throwIfAborted();
    out.set(await model.embedTexts(texts.slice(from, from + chunk), cb), from * model.dim);
    opts.onChunk?.(Math.min(from + chunk, texts.length));
  }
  return out;
}

/**
 * The index of a source from its embeddings, with the model's query bank (none given: no biases,
 * as an index being stored needs none — they are computed on load) and (by size or setting) an
 * HNSW graph.
 */
export async function galleryIndex(model: Pick<LoadedModel, "version" | "dim" | "queryBank">, src: GallerySource, imageEmb: Float32Array, captionEmb: Float32Array, kind: IndexKindSetting = "exact"): Promise<GalleryIndex> {
  const index = new GalleryIndex({
    modelVersion: model.version,
    dataset: src.dataset,
    datasetVersion: src.datasetVersion,
    dim: model.dim,
    builtAt: new Date(),
    imageIds: src.ids,
    imageSplits: src.imageSplits,
    imageCaptions: src.imageCaptions,
    imageEmb,
    captionEmb,
  });
  await index.applyQueryBank(model.queryBank);
  if (resolveIndexKind(kind, index.images) === "hnsw") index.useHnsw();
  return index;
}

/** Runs the index job. */
export async function buildIndex(opts: BuildOptions): Promise<BuildResult> {
  const t0 = performance.now();
  const { store, model } = opts;
  const report = opts.onProgress ?? (() => {});
  const src = await readGallerySource(store, opts.dataset, opts.datasetVersion);
  const n = src.ids.length;
  const batch = opts.imageBatch ?? 16;
  report({ stage: "images", done: 0, total: n });
  const imageEmb = await embedImages(store, model, src, 0, n, {
    imageBatch: batch,
    concurrency: opts.concurrency ?? 8,
    signal: opts.signal,
    onBatch: (done) => report({ stage: "images", done, total: n }),
  });
  const texts = src.imageCaptions.flat();
  const cb = opts.captionBatch ?? 256;
  report({ stage: "captions", done: 0, total: texts.length });
  const captionEmb = await embedCaptions(model, texts, { captionBatch: cb, signal: opts.signal, onChunk: (done) => report({ stage: "captions", done, total: texts.length }) });
  const index = await galleryIndex(model, src, imageEmb, captionEmb, opts.kind);
  const seconds = (performance.now() - t0) / 1000;
  if (opts.save ?? true) {
    report({ stage: "upload", done: 0, total: 1 });
    await saveIndex(store, index, { seconds: Math.round(seconds * 10) / 10, image_batch: batch, caption_batch: cb, provider: model.encoders.provider });
    report({ stage: "upload", done: 1, total: 1 });
  }
  report({ stage: "done", done: 1, total: 1 });
  return { index, seconds };
}
