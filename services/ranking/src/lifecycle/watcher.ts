/**
 * The registry watcher: every `pollMs` (and at once on poke(), e.g. after PromoteModel) it
 * reads what should serve — the production alias, the gallery's and the demo's latest
 * dataset versions — and hands that view to the manager. Checks never overlap: a poke during a
 * check runs one more check after it. The first check seeds an empty store from the demo pack.
 */
import type { Logger } from "@glimpse/logging";
import type { ObjectStore } from "@glimpse/objectstore";
import { readAliasDocument } from "../registry.js";
import { DEMO_DATASET, seedDemo } from "../seed.js";
import { latestOf, type GalleryRef } from "./datasets.js";

export interface WatcherOptions {
  store: ObjectStore;
  logger: Logger;
  pollMs: number;
  /** Dataset whose latest version is the gallery (the demo dataset until it exists). */
  dataset: string;
  /** Demo pack folder to seed from; undefined = no seeding. */
  demoDir?: string | undefined;
}

/** What the registry says should serve. */
export interface RegistryView {
  /** The version the production alias names. */
  production: string | undefined;
  /** The versions it named before, newest first. */
  previous: string[];
  gallery: GalleryRef | undefined;
  /** The demo dataset's latest version, else the gallery. */
  demo: GalleryRef | undefined;
}

export class RegistryWatcher {
  private seeded = false;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private again = false;
  private closed = false;
  private storeDown = false;

  /** `onView` acts on each view; its store errors count as the registry being unreachable too. */
  constructor(
    private readonly opts: WatcherOptions,
    private readonly onView: (view: RegistryView) => Promise<void>,
  ) {}

  /** True after a registry check failed to reach the object store, until one succeeds again. */
  get unreachable(): boolean {
    return this.storeDown;
  }

  /** Starts polling; the first check runs at once (the promise: when it is done). */
  start(): Promise<void> {
    this.timer = setInterval(() => void this.poke(), this.opts.pollMs);
    this.timer.unref();
    return this.poke();
  }

  /** Checks now. Resolves when done. */
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
          await this.check();
        } while (this.again && !this.closed);
      } finally {
        this.ticking = undefined;
      }
    })();
    return this.ticking;
  }

  /** Stops polling; resolves once a check under way is done. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.ticking?.catch(() => {});
  }

  private async check(): Promise<void> {
    const { store, logger } = this.opts;
    try {
      if (!this.seeded && this.opts.demoDir) {
        const r = await seedDemo(store, this.opts.demoDir, logger);
        this.seeded = true;
        logger.debug({ seed: r }, "demo pack checked");
      }
      const alias = await readAliasDocument(store);
      // The demo's pointer is read once: it is also the gallery while the dataset has none.
      const demoLatest = await latestOf(store, DEMO_DATASET);
      const gallery = (await latestOf(store, this.opts.dataset)) ?? demoLatest;
      const demo = demoLatest ?? gallery;
      if (this.storeDown) logger.info("object store reachable again");
      this.storeDown = false;
      await this.onView({ production: alias?.version, previous: alias?.previous ?? [], gallery, demo });
    } catch (err) {
      const msg = (err as Error).message;
      if (!this.storeDown) logger.warn({ err: msg }, "registry check failed; the loaded model keeps serving");
      this.storeDown = true;
    }
  }
}
