/**
 * The loader-verifier: turns a model version into a servable (model, index) pair, or refuses
 * it. Download, checksums and version id (fetchModel), onnxruntime sessions and their
 * inputs/outputs, golden vectors, the stored indexes loaded (computing them is the index
 * builder's job), a smoke query. A refused version
 * is remembered with its checksums.json etag, so it is not retried until that file changes.
 */
import type { Logger } from "@glimpse/logging";
import { CHECKSUMS_FILE, indexesPrefix, modelKey } from "@glimpse/layout/models";
import type { ObjectStore } from "@glimpse/objectstore";
import { GalleryIndex, type IndexKindSetting } from "../index/gallery.js";
import { extrasOf, loadIndex, readIndexDocument, saveIndex } from "../index/store.js";
import { GoldenMismatchError, verifyGolden } from "../model/golden.js";
import { LoadedModel, type ModelOptions } from "../model/model.js";
import { fetchModel, modelInfo, ModelRejectedError } from "../registry.js";
import { sameGallery, type GalleryRef } from "./datasets.js";
import type { Snapshot } from "./snapshot.js";

export interface LoaderOptions {
  store: ObjectStore;
  logger: Logger;
  indexKind: IndexKindSetting;
  model: ModelOptions;
}

/** A verified version with its indexes, ready to serve. */
export interface Prepared {
  model: LoadedModel;
  index: GalleryIndex;
  demoIndex: GalleryIndex | undefined;
}

export interface PrepareOptions {
  /** The serving model, when it is the version asked for: its sessions are used as they are. */
  reuse?: LoadedModel | undefined;
  /** A missing demo index leaves the demo gallery out (demo searches use the gallery) instead of failing. */
  demoOptional?: boolean;
}

class SmokeQueryError extends Error {
  override readonly name = "SmokeQueryError";
}

/** The version itself is bad (not the store, not the network): refuse it rather than retry. */
export function isRefusal(err: unknown): boolean {
  return err instanceof ModelRejectedError || err instanceof GoldenMismatchError || err instanceof SmokeQueryError;
}

export class ModelLoader {
  /** Versions refused, with the checksums.json etag they were refused at. */
  private readonly refused = new Map<string, string>();

  constructor(private readonly opts: LoaderOptions) {}

  /** True when `version` was refused and its checksums.json is unchanged since. */
  async refusedAsIs(version: string): Promise<boolean> {
    const refusedAt = this.refused.get(version);
    if (refusedAt === undefined) return false;
    return refusedAt === ((await this.opts.store.stat(modelKey(version, CHECKSUMS_FILE)))?.etag ?? "");
  }

  /**
   * Loads and verifies `version` with the stored indexes of `gallery` and `demo`. Throws what
   * failed (isRefusal() tells a bad version from a store error or a missing index); nothing
   * stays loaded then.
   */
  async prepare(version: string, gallery: GalleryRef | undefined, demo: GalleryRef | undefined, opts: PrepareOptions = {}): Promise<Prepared> {
    const { logger, store } = this.opts;
    let model: LoadedModel | undefined = opts.reuse;
    try {
      if (!model) {
        const fetched = await fetchModel(store, version);
        try {
          model = await LoadedModel.load(version, fetched.files, { ...this.opts.model, logger });
        } catch (err) {
          throw new ModelRejectedError(`${version}: onnxruntime cannot load it: ${(err as Error).message}`);
        }
        const loaded = model;
        if (fetched.golden) {
          const r = await verifyGolden(loaded, fetched.golden, async (f) => {
            const b = fetched.all.get(f);
            if (!b) throw new GoldenMismatchError(`golden image ${f} is not in checksums.json`);
            return b;
          });
          logger.info({ version, golden: r }, "golden vectors reproduced");
        } else logger.warn({ version }, "model has no golden.json; skipping the golden check");
      }
      const index = await this.storedIndex(model, gallery);
      const demoIndex = sameGallery(demo, gallery) ? index : await this.storedIndex(model, demo, opts.demoOptional);
      await smokeQuery(model, index);
      await modelInfo(store, version); // cached now: GetModelInfo answers even if the store goes down
      this.refused.delete(version);
      return { model, index, demoIndex };
    } catch (err) {
      if (model !== opts.reuse) await model?.release().catch(() => {});
      // (a new gallery's problem is not the serving model's: it is not refused for it)
      if (isRefusal(err) && !opts.reuse) this.refused.set(version, (await store.stat(modelKey(version, CHECKSUMS_FILE)).catch(() => undefined))?.etag ?? "");
      throw err;
    }
  }

  /** The stored index of (model, gallery); the empty index when there is no gallery. A missing one throws, or is undefined when `optional`. */
  private async storedIndex(model: LoadedModel, gallery: GalleryRef | undefined): Promise<GalleryIndex>;
  private async storedIndex(model: LoadedModel, gallery: GalleryRef | undefined, optional: boolean | undefined): Promise<GalleryIndex | undefined>;
  private async storedIndex(model: LoadedModel, gallery: GalleryRef | undefined, optional = false): Promise<GalleryIndex | undefined> {
    const { store, indexKind } = this.opts;
    if (!gallery) return emptyIndex(model);
    const loaded = await loadIndex(store, model.version, gallery.dataset, gallery.version, indexKind, model.queryBank);
    if (!loaded && optional) return undefined;
    if (!loaded) throw new Error(`no stored index of ${gallery.dataset} ${gallery.version} for ${model.version}`);
    if (loaded.graphBuilt) await saveIndex(store, loaded.index, { ...loaded.doc.build, hnsw_added: new Date().toISOString() }, extrasOf(loaded.doc)).catch(() => {});
    return loaded.index;
  }

  /** An index of another dataset version for the serving model (from the store; cached per snapshot). */
  async indexForVersion(s: Snapshot, datasetVersion: string): Promise<GalleryIndex | undefined> {
    for (const g of [s.gallery, s.demo]) if (g && g.data.datasetVersion === datasetVersion) return g;
    let p = s.extra.get(datasetVersion);
    if (!p) {
      p = (async () => {
        const { store } = this.opts;
        const page = await store.listPage(indexesPrefix(s.model.version), { delimiter: "/" });
        for (const prefix of page.prefixes) {
          const dataset = prefix.split("/")[3]!;
          if (await readIndexDocument(store, s.model.version, dataset, datasetVersion)) {
            return (await loadIndex(store, s.model.version, dataset, datasetVersion, this.opts.indexKind, s.model.queryBank))?.index;
          }
        }
        return undefined;
      })();
      p.catch(() => s.extra.delete(datasetVersion));
      if (s.extra.size >= 4) s.extra.delete(s.extra.keys().next().value!);
      s.extra.set(datasetVersion, p);
    }
    const idx = await p;
    if (!idx) s.extra.delete(datasetVersion);
    return idx;
  }
}

/** A real query through the new pair: embeddings finite and normalised, hits well-formed. */
async function smokeQuery(model: LoadedModel, index: GalleryIndex): Promise<void> {
  const q = await model.embedTexts(["a dog runs through the grass"]);
  let norm = 0;
  for (const v of q) {
    if (!Number.isFinite(v)) throw new SmokeQueryError("smoke query: the text embedding is not finite");
    norm += v * v;
  }
  if (Math.abs(Math.sqrt(norm) - 1) > 1e-3) throw new SmokeQueryError(`smoke query: the text embedding has norm ${Math.sqrt(norm).toFixed(4)}, not 1`);
  if (index.data.dim !== model.dim) throw new SmokeQueryError(`smoke query: index has ${index.data.dim}-d embeddings, the model ${model.dim}-d`);
  const hits = index.searchImages(q, 5);
  if (hits.length !== Math.min(5, index.images)) throw new SmokeQueryError(`smoke query: ${hits.length} hits from ${index.images} images`);
  for (const h of hits) if (!(h.score >= -1.001 && h.score <= 1.001)) throw new SmokeQueryError(`smoke query: score ${h.score} outside [-1, 1]`);
}

/** The index of no gallery (no dataset published yet): searches answer no hits. */
function emptyIndex(model: LoadedModel): GalleryIndex {
  return new GalleryIndex({
    modelVersion: model.version,
    dataset: "",
    datasetVersion: "",
    dim: model.dim,
    builtAt: new Date(),
    imageIds: [],
    imageSplits: new Uint8Array(0),
    imageCaptions: [],
    imageEmb: new Float32Array(0),
    captionEmb: new Float32Array(0),
  });
}
