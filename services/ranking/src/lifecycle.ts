/**
 * Model lifecycle: serve the version the registry's `production` alias names, over the
 * gallery of the configured dataset's latest version.
 *
 * An index is computed once per (model, dataset version) and stored; this process only loads
 * stored indexes. While the pair the registry names has none (a newly published dataset
 * version, a newly promoted model), the index builder computes it (lifecycle/index-builder.ts:
 * this process in the background, or a Kubernetes Job) and Ranking serves the newest pair that
 * has one — the serving pair, else the production model or an earlier one (the alias's
 * `previous`) over the latest gallery, an earlier version of it, or the demo gallery — and
 * moves when the index is stored. It never stops serving because an index is missing.
 *
 * The manager composes these parts and keeps the model status (state, loading version, last
 * error, the index it waits for) and health in step with them:
 *   - lifecycle/watcher.ts   polls the alias and the datasets' latest pointers (PromoteModel pokes it);
 *   - lifecycle/loader.ts    prepares a new (model, index) pair in the background — download,
 *                            checksums and version id, sessions, golden vectors, stored indexes
 *                            loaded, a smoke query — or refuses the version;
 *   - lifecycle/index-builder.ts  has missing indexes computed (locally or by a Job);
 *   - lifecycle/snapshot.ts  the serving snapshot, swapped in with one assignment and leased by
 *                            every request, so in-flight requests finish on the old version,
 *                            whose sessions are released when its last lease ends (then one
 *                            full GC); the memory they free goes back to the system given
 *                            lifecycle/memory.ts's malloc setting.
 *   - collections/serving.ts the collections' indexes, per model: followed on every poll, loaded
 *                            for a new model before it is swapped in.
 * A refused version is remembered (the reason in the model status) and the old one keeps
 * serving. A model does not take over while a collection the serving model answers has no
 * index for it (collections/gate.ts): its builds are asked for, and the old model — with its
 * collection indexes — keeps answering meanwhile. Everything a snapshot needs is in memory: if
 * the object store goes down, serving goes on.
 */
import { Code } from "@connectrpc/connect";
import { errorWithReason, ranking } from "@glimpse/api";
import type { Logger } from "@glimpse/logging";
import type { ObjectStore } from "@glimpse/objectstore";
import { ServingStatus, type HealthRegistry } from "@glimpse/rpc";
import { collectionBuildsFor, collectionsBlocking } from "./collections/gate.js";
import { CollectionIndexes } from "./collections/serving.js";
import { collectionOf } from "./collections/source.js";
import type { GalleryIndex, IndexKindSetting } from "./index/gallery.js";
import { indexStored, storedVersions } from "./index/store.js";
import { findDataset, galleryOf, latestGallery, sameGallery, type GalleryRef } from "./lifecycle/datasets.js";
import { ensureReported, LocalIndexBuilder, type BuildState, type IndexBuilder, type IndexPair } from "./lifecycle/index-builder.js";
import { isRefusal, ModelLoader } from "./lifecycle/loader.js";
import { warnIfMallocKeepsFreedMemory } from "./lifecycle/memory.js";
import { SnapshotSlot, type Snapshot } from "./lifecycle/snapshot.js";
import { RegistryWatcher, type RegistryView } from "./lifecycle/watcher.js";
import type { LoadedModel, ModelOptions } from "./model/model.js";

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
  /** Who computes missing indexes; default: this process (LocalIndexBuilder). */
  indexBuilder?: IndexBuilder;
}

/** The index Ranking waits for, and where its computation stands. */
export interface PendingIndex extends IndexPair, BuildState {}

export interface Status {
  state: ranking.ModelState;
  servingVersion: string;
  loadingVersion: string;
  lastError: string;
  loadedAt: Date | undefined;
  productionVersion: string;
  /** The serving gallery's index. */
  gallery: GalleryIndex | undefined;
  pendingIndex: PendingIndex | undefined;
}

export class ModelManager {
  private readonly slot: SnapshotSlot;
  private readonly loader: ModelLoader;
  private readonly watcher: RegistryWatcher;
  readonly builder: IndexBuilder;
  readonly collections: CollectionIndexes;
  private state: ranking.ModelState = State.NO_MODEL;
  private pending: PendingIndex | undefined;
  /** The registry view the serving fallback pair was chosen for: it is not looked for again until the view changes. */
  private fallbackFor: string | undefined;
  private loadingVersion = "";
  private lastError = "";
  private productionVersion = "";
  private readyWaiters: (() => void)[] = [];

  constructor(readonly opts: LifecycleOptions) {
    this.slot = new SnapshotSlot(opts.logger);
    this.loader = new ModelLoader(opts);
    this.watcher = new RegistryWatcher(opts, (view) => this.follow(view));
    this.builder = opts.indexBuilder ?? new LocalIndexBuilder({ store: opts.store, logger: opts.logger });
    this.collections = new CollectionIndexes({ store: opts.store, logger: opts.logger, builder: this.builder });
    warnIfMallocKeepsFreedMemory(opts.logger);
  }

  /** True after a registry check failed to reach the object store, until one succeeds again. */
  get registryUnreachable(): boolean {
    return this.watcher.unreachable;
  }

  /** Starts polling; the first check runs at once (the promise: when it is done). */
  start(): Promise<void> {
    return this.watcher.start();
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
    return this.watcher.poke();
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
    return {
      state: this.state,
      servingVersion: s?.model.version ?? "",
      loadingVersion: this.loadingVersion,
      lastError: this.lastError,
      loadedAt: s?.loadedAt,
      productionVersion: this.productionVersion,
      gallery: s?.gallery,
      pendingIndex: this.pending,
    };
  }

  async close(): Promise<void> {
    await this.watcher.close();
    await this.builder.close();
    this.slot.clear();
  }

  /** An index of another dataset version for the serving model (from the store; cached per snapshot). */
  indexForVersion(s: Snapshot, datasetVersion: string): Promise<GalleryIndex | undefined> {
    return this.loader.indexForVersion(s, datasetVersion);
  }

  /** Finds which dataset a version belongs to (the configured one, the demo, or any other). */
  findDataset(datasetVersion: string): Promise<string | undefined> {
    return findDataset(this.opts.store, this.opts.dataset, datasetVersion);
  }

  /** The latest version of the gallery dataset (configured, else demo). */
  gallery(): Promise<GalleryRef | undefined> {
    return latestGallery(this.opts.store, this.opts.dataset);
  }

  // ---- following the registry --------------------------------------------------------------

  /** Acts on one registry view, then follows the collections for the model that serves; a store error thrown here marks the registry unreachable. */
  private async follow(view: RegistryView): Promise<void> {
    await this.followModel(view);
    const s = this.slot.current;
    if (s) await this.collections.refresh(s.model);
  }

  private async followModel(view: RegistryView): Promise<void> {
    const { production, gallery, demo } = view;
    this.productionVersion = production ?? "";
    const version = this.opts.pinnedVersion || production;
    if (!version) {
      this.pending = undefined;
      if (!this.slot.current) this.setState(State.NO_MODEL);
      return;
    }
    const cur = this.slot.current;
    if (cur && serves(cur, version, gallery, demo)) {
      this.pending = undefined;
      this.collections.expect([]);
      // Production names the serving version again: an older refusal no longer applies.
      this.lastError = "";
      return;
    }
    const refused = await this.loader.refusedAsIs(version);
    // The model collections are answered with now: a switch must not take them away.
    const reference = cur?.model.version ?? view.previous[0];
    if (refused) {
      this.pending = undefined;
      this.collections.expect([]);
    } else {
      const missing: IndexPair[] = [];
      for (const g of galleriesOf(gallery, demo)) {
        if (!(await indexStored(this.opts.store, version, g.dataset, g.version))) missing.push({ model: version, dataset: g.dataset, datasetVersion: g.version });
      }
      const coverage = version === cur?.model.version ? [] : await this.collections.coverage([version, ...(reference ? [reference] : [])]);
      const blocking = collectionsBlocking(version, reference, coverage);
      if (missing.length === 0 && blocking.length === 0) {
        this.pending = undefined;
        this.collections.expect([]);
        await this.load(version, gallery, demo);
        return;
      }
      // Computed elsewhere (or in the background here): the gallery's indexes, and every collection's for a new model.
      const waits = [...missing, ...collectionBuildsFor(version, coverage)];
      const states = await Promise.all(waits.map((p) => ensureReported(this.builder, p)));
      const pending = waits.map((p, i): PendingIndex => ({ ...p, ...states[i]! }));
      this.collections.expect(pending.slice(missing.length));
      this.pending = reported(pending, missing.length, gallery, blocking);
    }
    // Meanwhile: the newest pair that has a stored index (chosen once per registry view).
    const viewKey = JSON.stringify([version, refused, view.previous, gallery, demo]);
    if (cur && this.fallbackFor === viewKey) return;
    const best = await this.fallback(refused ? [] : [version], view.previous, gallery, demo, reference);
    if (!best) {
      if (!cur) {
        this.loadingVersion = version;
        this.setState(State.LOADING);
      }
      return;
    }
    if (!(cur && serves(cur, best.model, best.gallery, best.demo))) {
      if (!(await this.load(best.model, best.gallery, best.demo, { demoOptional: true }))) return;
      this.opts.logger.info({ serving: best.model, gallery: best.gallery, waiting_for: this.pending }, "serving the newest pair with a stored index until the registry's pair has one");
    }
    this.fallbackFor = viewKey;
  }

  /**
   * The newest servable pair with a stored index: the latest gallery with the candidate models
   * (the production one, then earlier productions; none that would take collections away from
   * `reference`), then an earlier version of that dataset, then the demo gallery.
   * Deterministic, so every replica picks the same pair.
   */
  private async fallback(first: string[], previous: string[], gallery: GalleryRef | undefined, demo: GalleryRef | undefined, reference: string | undefined): Promise<{ model: string; gallery: GalleryRef; demo: GalleryRef | undefined } | undefined> {
    const { store } = this.opts;
    const models: string[] = [];
    for (const m of new Set([...first, ...previous])) {
      if (await this.loader.refusedAsIs(m)) continue;
      if (reference && m !== reference && collectionsBlocking(m, reference, await this.collections.coverage([m, reference])).length > 0) continue;
      models.push(m);
    }
    if (gallery) {
      for (const m of models) if (await indexStored(store, m, gallery.dataset, gallery.version)) return { model: m, gallery, demo };
      for (const m of models) {
        const older = (await storedVersions(store, m, gallery.dataset)).filter((v) => v !== gallery.version);
        if (older.length > 0) return { model: m, gallery: { dataset: gallery.dataset, version: older[0]! }, demo };
      }
    }
    if (demo && !sameGallery(demo, gallery)) {
      for (const m of models) if (await indexStored(store, m, demo.dataset, demo.version)) return { model: m, gallery: demo, demo };
    }
    return undefined;
  }

  /** Loads and serves a pair whose indexes are stored; the serving model's sessions are reused when it is the same version. True once it serves. */
  private async load(version: string, gallery: GalleryRef | undefined, demo: GalleryRef | undefined, opts: { demoOptional?: boolean } = {}): Promise<boolean> {
    const { logger } = this.opts;
    const t0 = performance.now();
    const cur = this.slot.current;
    const reuse = cur?.model.version === version ? cur.model : undefined;
    if (!reuse) this.loadingVersion = version;
    if (!cur) this.setState(State.LOADING);
    logger.info({ version, gallery }, reuse ? "new gallery for the serving model: loading its index" : "loading model version");
    try {
      const { model, index, demoIndex } = await this.loader.prepare(version, gallery, demo, { reuse, demoOptional: opts.demoOptional ?? false });
      // a new model answers collections from the start: their indexes for it are loaded first
      if (!reuse) await this.collections.prepare(model);
      if (this.slot.current !== cur) {
        if (!reuse) await model.release().catch(() => {});
        return false;
      }
      this.swap(model, index, demoIndex, reuse ? cur!.loadedAt : new Date());
      this.collections.retain(version);
      if (!reuse || this.opts.pinnedVersion || version === this.productionVersion) this.lastError = "";
      logger.info({ version, gallery: index.data.datasetVersion, images: index.images, ms: Math.round(performance.now() - t0) }, "serving");
      return true;
    } catch (err) {
      const msg = (err as Error).message;
      if (isRefusal(err)) {
        this.lastError = `${version}: refused: ${msg.startsWith(version) ? msg.slice(version.length + 2) : msg}`;
        logger.error({ version, err: msg }, "model version refused; the previous version keeps serving");
      } else {
        this.lastError = `${version}: could not be loaded (will retry): ${msg}`;
        logger.warn({ version, err: msg }, "model version could not be loaded; will retry");
      }
      if (!this.slot.current) this.setState(State.FAILED);
      return false;
    } finally {
      if (!reuse) this.loadingVersion = "";
    }
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

/**
 * The build the model status reports: the gallery's, else the first other gallery's, else that
 * of a collection the switch waits for; the collections it waits for are named in its detail.
 */
function reported(pending: PendingIndex[], galleries: number, gallery: GalleryRef | undefined, blocking: string[]): PendingIndex {
  const waitedFor = pending.slice(galleries).filter((p) => blocking.includes(collectionOf(p.dataset)!));
  const g = pending.slice(0, galleries).findIndex((p) => gallery && p.datasetVersion === gallery.version && p.dataset === gallery.dataset);
  const first = galleries > 0 ? pending[Math.max(0, g)]! : (waitedFor[0] ?? pending[0]!);
  if (waitedFor.length === 0) return first;
  const named = waitedFor.slice(0, 3).map((p) => p.dataset).join(", ") + (waitedFor.length > 3 ? `, … (${waitedFor.length} in all)` : "");
  return { ...first, detail: `${first.detail}; the switch to ${first.model} waits for the indexes of ${named}` };
}

/** The galleries a pair serves: the gallery, and the demo one when it is another. */
function galleriesOf(gallery: GalleryRef | undefined, demo: GalleryRef | undefined): GalleryRef[] {
  return [gallery, sameGallery(demo, gallery) ? undefined : demo].filter((g): g is GalleryRef => g !== undefined);
}

/** The snapshot serves exactly this pair (the demo gallery too, when one is named). */
function serves(s: Snapshot, version: string, gallery: GalleryRef | undefined, demo: GalleryRef | undefined): boolean {
  if (s.model.version !== version) return false;
  const g = galleryOf(s.gallery);
  if (gallery ? !sameGallery(g, gallery) : g !== undefined) return false;
  return demo === undefined || sameGallery(s.demo ? galleryOf(s.demo) : undefined, demo);
}
