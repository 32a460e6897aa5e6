/**
 * The index job: embeds every image and every caption of a published dataset version with
 * one model version, in batches, reporting progress, and stores the result beside the model.
 * Used by the BuildIndex RPC, the `glimpse-ranking index` CLI and the model lifecycle.
 */
import type { ObjectStore } from "@glimpse/objectstore";
import { readBlob, readCaptions, readPublished, readSplits } from "@glimpse/pipeline";
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

/** Runs the index job. */
export async function buildIndex(opts: BuildOptions): Promise<BuildResult> {
  const t0 = performance.now();
  const { store, model, dataset } = opts;
  const report = opts.onProgress ?? (() => {});
  const published = await readPublished(store, dataset, opts.datasetVersion);
  const m = published.manifest;
  const [captions, splits] = await Promise.all([readCaptions(store, m), readSplits(store, m)]);
  const splitOf = new Map<string, SplitNumber>();
  for (const id of splits.train) splitOf.set(id, SPLIT.train);
  for (const id of splits.dev) splitOf.set(id, SPLIT.dev);
  for (const id of splits.test) splitOf.set(id, SPLIT.test);

  const ids = Object.keys(m.images).sort();
  const dim = model.dim;
  const imageEmb = new Float32Array(ids.length * dim);
  const batch = opts.imageBatch ?? 16;
  const conc = opts.concurrency ?? 8;
  report({ stage: "images", done: 0, total: ids.length });

  // Fetch + decode (sharp, off the main thread) of batch i+1 overlaps the encoder run of batch i.
  const decode = async (from: number): Promise<DecodedPixels[]> => {
    const slice = ids.slice(from, from + batch);
    const out: DecodedPixels[] = new Array(slice.length);
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(conc, slice.length) }, async () => {
        while (next < slice.length) {
          const i = next++;
          const id = slice[i]!;
          opts.signal?.throwIfAborted();
          const bytes = await readBlob(store, m.images[id]!);
          try {
            out[i] = await model.preprocessor.fromEncoded(bytes);
          } catch (err) {
            throw new Error(`image ${id} of ${dataset} ${published.version}: ${(err as Error).message}`);
          }
        }
      }),
    );
    return out;
  };
  let pending = ids.length > 0 ? decode(0) : undefined;
  for (let from = 0; from < ids.length; from += batch) {
    const pixels = await pending!;
    pending = from + batch < ids.length ? decode(from + batch) : undefined;
    pending?.catch(() => {}); // surfaced when awaited
    opts.signal?.throwIfAborted();
    imageEmb.set(await model.embedPixels(pixels), from * dim);
    report({ stage: "images", done: Math.min(from + batch, ids.length), total: ids.length });
  }

  const imageCaptions = ids.map((id) => captions[id] ?? []);
  const texts = imageCaptions.flat();
  const captionEmb = new Float32Array(texts.length * dim);
  const cb = opts.captionBatch ?? 256;
  report({ stage: "captions", done: 0, total: texts.length });
  // Chunks of many runs each, so progress moves and an abort is noticed.
  const chunk = cb * 8;
  for (let from = 0; from < texts.length; from += chunk) {
    opts.signal?.throwIfAborted();
    captionEmb.set(await model.embedTexts(texts.slice(from, from + chunk), cb), from * dim);
    report({ stage: "captions", done: Math.min(from + chunk, texts.length), total: texts.length });
  }

  const index = new GalleryIndex({
    modelVersion: model.version,
    dataset,
    datasetVersion: published.version,
    dim,
    builtAt: new Date(),
    imageIds: ids,
    imageSplits: Uint8Array.from(ids.map((id) => splitOf.get(id) ?? SPLIT.unspecified)),
    imageCaptions,
    imageEmb,
    captionEmb,
  });
  await index.applyQueryBank(model.queryBank);
  if (resolveIndexKind(opts.kind ?? "exact", index.images) === "hnsw") index.useHnsw();
  const seconds = (performance.now() - t0) / 1000;
  if (opts.save ?? true) {
    report({ stage: "upload", done: 0, total: 1 });
    await saveIndex(store, index, { seconds: Math.round(seconds * 10) / 10, image_batch: batch, caption_batch: cb, provider: model.encoders.provider });
    report({ stage: "upload", done: 1, total: 1 });
  }
  report({ stage: "done", done: 1, total: 1 });
  return { index, seconds };
}
