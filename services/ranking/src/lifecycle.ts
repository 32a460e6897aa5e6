/**
 * Model lifecycle: serve the version the registry's `production` alias names, over the
 * gallery of the configured dataset's latest version.
 *
 * A poll (and PromoteModel, at once) reads the alias and the dataset's latest pointer. When
 * either moved, the new (model, index) pair is prepared in the background — download,
 * checksums and version id, onnxruntime sessions, golden vectors, index loaded or built, a
 * smoke query — and then swapped in with one assignment. Requests hold a lease on the
 * snapshot they started with, so in-flight requests finish on the old version, whose
 * sessions are released when its last lease ends. A version that fails any check is
 * refused (remembered, with the reason in the model status) and the old one keeps serving.
 * Everything a snapshot needs is in memory: if the object store goes down, serving goes on.
 */
import { Code } from "@connectrpc/connect";
import { errorWithReason, ranking } from "@glimpse/api";
import type { Logger } from "@glimpse/logging";
import type { ObjectStore } from "@glimpse/objectstore";
import { readLatest } from "@glimpse/pipeline";
import { ServingStatus, type HealthRegistry } from "@glimpse/rpc";
import { buildIndex, type BuildProgress } from "./index/build.js";
import { GalleryIndex, type IndexKindSetting } from "./index/gallery.js";
import { loadIndex, readIndexDocument, saveIndex } from "./index/store.js";
import { SnapshotSlot, type Snapshot } from "./lifecycle/snapshot.js";
import { GoldenMismatchError, verifyGolden } from "./model/golden.js";
import { LoadedModel, type ModelOptions } from "./model/model.js";
import { fetchModel, modelInfo, ModelRejectedError, readAlias } from "./registry.js";
import { DEMO_DATASET, seedDemo } from "./seed.js";

const State = ranking.ModelState;

export interface LifecycleOptions {
  store: ObjectStore;
  logger: Logger;
  health?: HealthRegistry;
  /** The health entry to flip (the Ranking service's full name). */
  serviceName?: string;
  /** Dataset whose latest version is the gallery (the demo dataset until it exists). */
  dataset: string;
  indexKind: IndexKindSetting;
  pollMs: number;
  model: ModelOptions;
  /** Demo pack folder to seed from; undefined = no seeding. */
  demoDir?: string | undefined;
  /** Serve this version instead of what the production alias names (benchmarks, canaries). */
  pinnedVersion?: string | undefined;
  /** Images per encoder run when building an index in the background. */
  indexImageBatch?: number;
}

export interface GalleryRef {
  dataset: string;
  version: string;
}

export interface Status {
  state: ranking.ModelState;
  servingVersion: string;
  loadingVersion: string;
  lastError: string;
  loadedAt: Date | undefined;
  productionVersion: string;
  index: { modelVersion: string; dataset: string; datasetVersion: string; images: number; captions: number; kind: string; builtAt: Date } | undefined;
}

export class ModelManager {
  private readonly slot: SnapshotSlot;
  private state: ranking.ModelState = State.NO_MODEL;
  private loadingVersion = "";
  private lastError = "";
  private productionVersion = "";
  /** Versions refused, with the checksums.json etag they were refused at. */
  private readonly refused = new Map<string, string>();
  private seeded = false;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private again = false;
  private closed = false;
  private readyWaiters: (() => void)[] = [];
  private storeDown = false;

  constructor(readonly opts: LifecycleOptions) {
    this.slot = new SnapshotSlot(opts.logger);
  }

  /** True after a registry check failed to reach the object store, until one succeeds again. */
  get registryUnreachable(): boolean {
    return this.storeDown;
  }

  /** Starts polling; the first check runs at once (the promise: when it is done). */
  start(): Promise<void> {
    this.timer = setInterval(() => void this.poke(), this.opts.pollMs);
    this.timer.unref();
    return this.poke();
  }

  /** Health to keep in step with the state (the server's registry exists after listening). */
  attachHealth(health: HealthRegistry): void {
    this.opts.health = health;
    this.setState(this.state);
  }

  /** Resolves once a model serves, or after `timeoutMs` (false then). */
  ready(timeoutMs: number): Promise<boolean> {
    if (this.slot.current) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.readyWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  /** Checks the alias and the dataset now (PromoteModel calls this). Resolves when done. */
  poke(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.ticking) {
      this.again = true;
      return this.ticking;
    }
    this.ticking = (async () => {
      try {
        do {
          this.again = false;
          await this.tick();
        } while (this.again && !this.closed);
      } finally {
        this.ticking = undefined;
      }
    })();
    return this.ticking;
  }

  /** The serving snapshot, leased: call release() when the request is done. */
  acquire(): Snapshot {
    const s = this.slot.current;
    if (!s) {
      const why =
        this.state === State.FAILED
          ? `the model failed to load: ${this.lastError}`
          : this.state === State.LOADING
            ? `model ${this.loadingVersion} is still loading`
            : "no model is promoted to production";
      throw errorWithReason(Code.Unavailable, "MODEL_NOT_LOADED", `no model is loaded: ${why}`, { state: State[this.state] });
    }
    s.acquire();
    return s;
  }

  get serving(): Snapshot | undefined {
    return this.slot.current;
  }

  status(): Status {
    const s = this.slot.current;
    const g = s?.gallery;
    return {
      state: this.state,
      servingVersion: s?.model.version ?? "",
      loadingVersion: this.loadingVersion,
      lastError: this.lastError,
      loadedAt: s?.loadedAt,
      productionVersion: this.productionVersion,
      index: g && {
        modelVersion: g.data.modelVersion,
        dataset: g.data.dataset,
        datasetVersion: g.data.datasetVersion,
        images: g.images,
        captions: g.captions,
        kind: g.kind,
        builtAt: g.data.builtAt,
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.ticking?.catch(() => {});
    this.slot.clear();
  }

  // ---- the check ---------------------------------------------------------------------------

  private async tick(): Promise<void> {
    const { store, logger } = this.opts;
    try {
      if (!this.seeded && this.opts.demoDir) {
        const r = await seedDemo(store, this.opts.demoDir, logger);
        this.seeded = true;
        logger.debug({ seed: r }, "demo pack checked");
      }
      const production = await readAlias(store);
      const alias = this.opts.pinnedVersion || production;
      const gallery = await this.resolveGallery();
      const demo = (await this.latestOf(DEMO_DATASET)) ?? gallery;
      if (this.storeDown) logger.info("object store reachable again");
      this.storeDown = false;
      this.productionVersion = production ?? "";
      if (!alias) {
        if (!this.slot.current) this.setState(State.NO_MODEL);
        return;
      }
      const cur = this.slot.current;
      if (cur && cur.model.version === alias) {
        // Same model; a newly published dataset version gets a new index.
        if (gallery && (cur.gallery.data.dataset !== gallery.dataset || cur.gallery.data.datasetVersion !== gallery.version)) {
          await this.swapGallery(cur, gallery, demo);
        }
        // Production names the serving version again: an older refusal no longer applies.
        this.lastError = "";
        return;
      }
      const etag = (await store.stat(`models/${alias}/checksums.json`))?.etag ?? "";
      if (this.refused.has(alias) && this.refused.get(alias) === etag) return;
      await this.load(alias, gallery, demo);
    } catch (err) {
      const msg = (err as Error).message;
      if (!this.storeDown) logger.warn({ err: msg }, "registry check failed; the loaded model keeps serving");
      this.storeDown = true;
    }
  }

  /** The configured dataset's latest version, else the demo dataset's. */
  private async resolveGallery(): Promise<GalleryRef | undefined> {
    return (await this.latestOf(this.opts.dataset)) ?? (await this.latestOf(DEMO_DATASET));
  }

  private async latestOf(dataset: string): Promise<GalleryRef | undefined> {
    const version = (await readLatest(this.opts.store, dataset))?.pointer?.version;
    return typeof version === "string" ? { dataset, version } : undefined;
  }

  private async load(version: string, gallery: GalleryRef | undefined, demo: GalleryRef | undefined): Promise<void> {
    const { logger, store } = this.opts;
    const t0 = performance.now();
    this.loadingVersion = version;
    if (!this.slot.current) this.setState(State.LOADING);
    logger.info({ version, gallery }, "loading model version");
    let model: LoadedModel | undefined;
    try {
      const fetched = await fetchModel(store, version);
      try {
        model = await LoadedModel.load(version, fetched.files, { ...this.opts.model, logger });
      } catch (err) {
        throw new ModelRejectedError(`${version}: onnxruntime cannot load it: ${(err as Error).message}`);
      }
      if (fetched.golden) {
        const r = await verifyGolden(model, fetched.golden, async (f) => {
          const b = fetched.all.get(f);
          if (!b) throw new GoldenMismatchError(`golden image ${f} is not in checksums.json`);
          return b;
        });
        logger.info({ version, golden: r }, "golden vectors reproduced");
      } else logger.warn({ version }, "model has no golden.json; skipping the golden check");
      const index = await this.indexFor(model, gallery);
      const demoIndex = demo && gallery && demo.dataset === gallery.dataset && demo.version === gallery.version ? index : await this.indexFor(model, demo);
      await smokeQuery(model, index);
      await modelInfo(store, version); // cached now: GetModelInfo answers even if the store goes down
      this.swap(model, index, demoIndex, new Date());
      this.lastError = "";
      this.refused.delete(version);
      logger.info({ version, gallery: index.data.datasetVersion, images: index.images, ms: Math.round(performance.now() - t0) }, "model version serving");
    } catch (err) {
      await model?.release().catch(() => {});
      const msg = (err as Error).message;
      const rejected = err instanceof ModelRejectedError || err instanceof GoldenMismatchError || err instanceof SmokeQueryError;
      if (rejected) {
        this.refused.set(version, (await store.stat(`models/${version}/checksums.json`).catch(() => undefined))?.etag ?? "");
        this.lastError = `${version}: refused: ${msg.startsWith(version) ? msg.slice(version.length + 2) : msg}`;
        logger.error({ version, err: msg }, "model version refused; the previous version keeps serving");
      } else {
        this.lastError = `${version}: could not be loaded (will retry): ${msg}`;
        logger.warn({ version, err: msg }, "model version could not be loaded; will retry");
      }
      if (!this.slot.current) this.setState(State.FAILED);
    } finally {
      this.loadingVersion = "";
    }
  }

  private async swapGallery(cur: Snapshot, gallery: GalleryRef, demo: GalleryRef | undefined): Promise<void> {
    const { logger } = this.opts;
    logger.info({ gallery }, "new gallery dataset version; preparing its index");
    try {
      const index = await this.indexFor(cur.model, gallery);
      const demoIndex = demo && demo.dataset === gallery.dataset && demo.version === gallery.version ? index : cur.demo;
      await smokeQuery(cur.model, index);
      if (this.slot.current !== cur) return;
      this.swap(cur.model, index, demoIndex, cur.loadedAt);
      logger.info({ gallery, images: index.images }, "serving the new gallery");
    } catch (err) {
      this.lastError = `${cur.model.version}: index for ${gallery.dataset} ${gallery.version} failed (will retry): ${(err as Error).message}`;
      logger.warn({ err: (err as Error).message, gallery }, "gallery index failed; the current one keeps serving");
    }
  }

  /** The stored index of (model, gallery), built (and stored) when missing. */
  async indexFor(model: LoadedModel, gallery: GalleryRef | undefined, onProgress?: (p: BuildProgress) => void): Promise<GalleryIndex> {
    const { store, logger, indexKind } = this.opts;
    if (!gallery) return emptyIndex(model);
    const loaded = await loadIndex(store, model.version, gallery.dataset, gallery.version, indexKind, model.queryBank);
    if (loaded) {
      if (loaded.graphBuilt) await saveIndex(store, loaded.index, { hnsw_added: new Date().toISOString() }).catch(() => {});
      return loaded.index;
    }
    logger.info({ model: model.version, gallery }, "no stored index: building it");
    let last = 0;
    const r = await buildIndex({
      store,
      model,
      dataset: gallery.dataset,
      datasetVersion: gallery.version,
      kind: indexKind,
      imageBatch: this.opts.indexImageBatch ?? 8,
      onProgress: (p) => {
        onProgress?.(p);
        if (Date.now() - last > 10_000 || p.stage === "done") {
          last = Date.now();
          logger.info({ stage: p.stage, done: p.done, total: p.total }, "index build");
        }
      },
    });
    logger.info({ model: model.version, gallery, seconds: Math.round(r.seconds) }, "index built and stored");
    return r.index;
  }

  /** An index of another dataset version for the serving model (from the store; cached per snapshot). */
  async indexForVersion(s: Snapshot, datasetVersion: string): Promise<GalleryIndex | undefined> {
    for (const g of [s.gallery, s.demo]) if (g && g.data.datasetVersion === datasetVersion) return g;
    let p = s.extra.get(datasetVersion);
    if (!p) {
      p = (async () => {
        const { store } = this.opts;
        const page = await store.listPage(`models/${s.model.version}/indexes/`, { delimiter: "/" });
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

  /** Finds which dataset a version belongs to (the configured one, the demo, or any other). */
  async findDataset(datasetVersion: string): Promise<string | undefined> {
    const { store } = this.opts;
    const names = [this.opts.dataset, DEMO_DATASET];
    const page = await store.listPage("datasets/", { delimiter: "/" });
    for (const p of page.prefixes) {
      const n = p.slice("datasets/".length, -1);
      if (!names.includes(n)) names.push(n);
    }
    for (const n of names) if (await store.stat(`datasets/${n}/versions/${datasetVersion}/manifest.json`)) return n;
    return undefined;
  }

  /** The latest version of the gallery dataset (configured, else demo). */
  gallery(): Promise<GalleryRef | undefined> {
    return this.resolveGallery();
  }

  /** Serves the new pair (the previous snapshot drains), and tells health and ready() waiters. */
  private swap(model: LoadedModel, gallery: GalleryIndex, demo: GalleryIndex | undefined, loadedAt: Date): void {
    this.slot.swap(model, gallery, demo, loadedAt);
    this.setState(State.SERVING);
    for (const w of this.readyWaiters.splice(0)) w();
  }

  private setState(state: ranking.ModelState): void {
    this.state = state;
    const h = this.opts.health;
    if (!h) return;
    const status = state === State.SERVING ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
    h.set("", status);
    if (this.opts.serviceName) h.set(this.opts.serviceName, status);
  }
}

export class SmokeQueryError extends Error {
  override readonly name = "SmokeQueryError";
}

/** A real query through the new pair: embeddings finite and normalised, hits well-formed. */
export async function smokeQuery(model: LoadedModel, index: GalleryIndex): Promise<void> {
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
