/**
 * Model lifecycle: serve the version the registry's `production` alias names, over the
 * gallery of the configured dataset's latest version.
 *
 * The manager composes three parts and keeps the model status (state, loading version, last
 * error) and health in step with them:
 *   - lifecycle/watcher.ts   polls the alias and the datasets' latest pointers (PromoteModel pokes it);
 *   - lifecycle/loader.ts    prepares a new (model, index) pair in the background — download,
 *                            checksums and version id, sessions, golden vectors, index loaded or
 *                            built, a smoke query — or refuses the version;
 *   - lifecycle/snapshot.ts  the serving snapshot, swapped in with one assignment and leased by
 *                            every request, so in-flight requests finish on the old version,
 *                            whose sessions are released when its last lease ends.
 * A refused version is remembered (the reason in the model status) and the old one keeps
 * serving. Everything a snapshot needs is in memory: if the object store goes down, serving
 * goes on.
 */
import { Code } from "@connectrpc/connect";
import { errorWithReason, ranking } from "@glimpse/api";
import type { Logger } from "@glimpse/logging";
import type { ObjectStore } from "@glimpse/objectstore";
import { ServingStatus, type HealthRegistry } from "@glimpse/rpc";
import type { GalleryIndex, IndexKindSetting } from "./index/gallery.js";
import { findDataset, latestGallery, sameGallery, type GalleryRef } from "./lifecycle/datasets.js";
import { isRefusal, ModelLoader } from "./lifecycle/loader.js";
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
  /** Images per encoder run when building an index in the background. */
  indexImageBatch?: number;
}

export interface Status {
  state: ranking.ModelState;
  servingVersion: string;
  loadingVersion: string;
  lastError: string;
  loadedAt: Date | undefined;
  productionVersion: string;
  /** The serving gallery's index. */
  gallery: GalleryIndex | undefined;
}

export class ModelManager {
  private readonly slot: SnapshotSlot;
  private readonly loader: ModelLoader;
  private readonly watcher: RegistryWatcher;
  private state: ranking.ModelState = State.NO_MODEL;
  private loadingVersion = "";
  private lastError = "";
  private productionVersion = "";
  private readyWaiters: (() => void)[] = [];

  constructor(readonly opts: LifecycleOptions) {
    this.slot = new SnapshotSlot(opts.logger);
    this.loader = new ModelLoader(opts);
    this.watcher = new RegistryWatcher(opts, (view) => this.follow(view));
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
    };
  }

  async close(): Promise<void> {
    await this.watcher.close();
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

  /** Acts on one registry view; a store error thrown here marks the registry unreachable. */
  private async follow({ production, gallery, demo }: RegistryView): Promise<void> {
    this.productionVersion = production ?? "";
    const version = this.opts.pinnedVersion || production;
    if (!version) {
      if (!this.slot.current) this.setState(State.NO_MODEL);
      return;
    }
    const cur = this.slot.current;
    if (cur && cur.model.version === version) {
      // Same model; a newly published dataset version gets a new index.
      if (gallery && (cur.gallery.data.dataset !== gallery.dataset || cur.gallery.data.datasetVersion !== gallery.version)) {
        await this.swapGallery(cur, gallery, demo);
      }
      // Production names the serving version again: an older refusal no longer applies.
      this.lastError = "";
      return;
    }
    if (await this.loader.refusedAsIs(version)) return;
    await this.load(version, gallery, demo);
  }

  private async load(version: string, gallery: GalleryRef | undefined, demo: GalleryRef | undefined): Promise<void> {
    const { logger } = this.opts;
    const t0 = performance.now();
    this.loadingVersion = version;
    if (!this.slot.current) this.setState(State.LOADING);
    logger.info({ version, gallery }, "loading model version");
    try {
      const { model, index, demoIndex } = await this.loader.prepare(version, gallery, demo);
      this.swap(model, index, demoIndex, new Date());
      this.lastError = "";
      logger.info({ version, gallery: index.data.datasetVersion, images: index.images, ms: Math.round(performance.now() - t0) }, "model version serving");
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
    } finally {
      this.loadingVersion = "";
    }
  }

  private async swapGallery(cur: Snapshot, gallery: GalleryRef, demo: GalleryRef | undefined): Promise<void> {
    const { logger } = this.opts;
    logger.info({ gallery }, "new gallery dataset version; preparing its index");
    try {
      const index = await this.loader.prepareGallery(cur.model, gallery);
      const demoIndex = sameGallery(demo, gallery) ? index : cur.demo;
      if (this.slot.current !== cur) return;
      this.swap(cur.model, index, demoIndex, cur.loadedAt);
      logger.info({ gallery, images: index.images }, "serving the new gallery");
    } catch (err) {
      this.lastError = `${cur.model.version}: index for ${gallery.dataset} ${gallery.version} failed (will retry): ${(err as Error).message}`;
      logger.warn({ err: (err as Error).message, gallery }, "gallery index failed; the current one keeps serving");
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
