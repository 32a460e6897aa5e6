/**
 * The collections Ranking serves (issue #23). On every lifecycle poll — and at once for a
 * collection a request names that it does not follow yet — it lists the collections and aims
 * each at its latest version × the serving model: a stored index is loaded and swapped in (one
 * assignment); a missing one is asked of the index builder (the same builders, Jobs and shard
 * workers as a gallery's), and meanwhile the newest version with an index for the serving model
 * keeps answering. A deleted collection is dropped.
 *
 * Indexes are kept per model version. A model swap (lifecycle.ts) first loads every collection's
 * newest index for the new model (prepare), then swaps the snapshot, then drops the old model's
 * (retain); a search looks its collection up with its snapshot's model in the tick it leases the
 * snapshot, so its query and the index it searches always come from the same model.
 */
import type { Logger } from "@glimpse/logging";
import type { ObjectStore } from "@glimpse/objectstore";
import { listCollectionIds, readCollectionPointer, readCollectionRecord, readCollectionVersion } from "@glimpse/layout";
import { indexedVersions, indexStored, loadIndex } from "../index/store.js";
import type { PendingIndex } from "../lifecycle.js";
import { ensureReported, type IndexBuilder } from "../lifecycle/index-builder.js";
import type { LoadedModel } from "../model/model.js";
import type { CollectionCoverage } from "./gate.js";
import { ServedCollection } from "./served.js";
import { collectionDataset, collectionOf, nearestIndexedAncestor } from "./source.js";

export interface CollectionIndexesOptions {
  store: ObjectStore;
  logger: Logger;
  builder: IndexBuilder;
}

/** What GetCollectionIndex tells of a collection. */
export interface CollectionStatus {
  /** The version answering for the model asked about (undefined: none has an index yet). */
  served: ServedCollection | undefined;
  /** The latest published version ("" before the first sync is published). */
  latest: string;
  /** The build under way: of a newer version for the serving model, or for a model about to serve. */
  pending: PendingIndex | undefined;
}

interface Followed {
  latest: string;
  /** By model version. */
  served: Map<string, ServedCollection>;
  /** The serving model's build of the latest version, while it has no stored index. */
  pending: PendingIndex | undefined;
}

export class CollectionIndexes {
  private readonly followed = new Map<string, Followed>();
  private readonly checks = new Map<string, Promise<void>>();
  /** The models whose indexes are kept: the serving one, and one about to serve. */
  private readonly models = new Set<string>();
  /** Builds a model switch waits for, by collection (the lifecycle names them). */
  private upcoming = new Map<string, PendingIndex>();

  constructor(private readonly opts: CollectionIndexesOptions) {}

  /** The index answering for a collection and a model (synchronous: looked up in the tick the snapshot is leased). */
  get(id: string, modelVersion: string): ServedCollection | undefined {
    return this.followed.get(id)?.served.get(modelVersion);
  }

  /** Undefined for a collection not followed (none such, as of the last look). */
  status(id: string, modelVersion: string): CollectionStatus | undefined {
    const f = this.followed.get(id);
    if (!f) return undefined;
    return { served: f.served.get(modelVersion), latest: f.latest, pending: f.pending ?? this.upcoming.get(id) };
  }

  /** Follows every collection for the serving model (each lifecycle poll). A collection's store error is logged; it keeps what it serves. */
  async refresh(model: LoadedModel): Promise<void> {
    const ids = await listCollectionIds(this.opts.store);
    for (const id of [...this.followed.keys()]) if (!ids.includes(id)) this.drop(id);
    for (const id of ids) {
      await this.check(id, model).catch((err: unknown) => this.opts.logger.warn({ collection: id, err: (err as Error).message }, "collection check failed; what it serves keeps serving"));
    }
  }

  /** Looks at one collection now (a request names one not followed yet); false when there is no such collection. */
  async lookup(id: string, model: LoadedModel): Promise<boolean> {
    await this.check(id, model);
    return this.followed.has(id);
  }

  /**
   * Before a model swap: each collection's newest index for the new model, loaded. A collection
   * whose index cannot be loaded is logged and left out (its searches say it has no index) rather
   * than holding the model back.
   */
  async prepare(model: LoadedModel): Promise<void> {
    this.models.add(model.version);
    for (const id of await listCollectionIds(this.opts.store)) {
      try {
        const latest = (await readCollectionPointer(this.opts.store, id))?.version;
        if (!latest) continue;
        const f = this.entry(id);
        f.latest = latest;
        const newest = await this.newestIndexed(id, latest, model.version);
        if (newest) await this.load(f, id, newest, model);
      } catch (err) {
        this.opts.logger.warn({ collection: id, model: model.version, err: (err as Error).message }, "collection index not loaded for the new model");
      }
    }
  }

  /** After a model swap: only the serving model's indexes stay (in-flight searches hold theirs). */
  retain(modelVersion: string): void {
    this.models.clear();
    this.models.add(modelVersion);
    for (const f of this.followed.values()) {
      for (const m of [...f.served.keys()]) if (m !== modelVersion) f.served.delete(m);
      if (f.pending && f.pending.model !== modelVersion) f.pending = undefined;
    }
    this.upcoming.clear();
  }

  /** Which of `models` have a stored index of some version of each collection (the lifecycle's switch decision). */
  async coverage(models: string[]): Promise<CollectionCoverage[]> {
    const { store } = this.opts;
    const out: CollectionCoverage[] = [];
    for (const id of await listCollectionIds(store)) {
      const dataset = collectionDataset(id);
      const latest = (await readCollectionPointer(store, id))?.version ?? "";
      const indexedFor = new Set<string>();
      for (const m of new Set(models)) {
        if ((latest && (await indexStored(store, m, dataset, latest))) || (await indexedVersions(store, m, dataset)).length > 0) indexedFor.add(m);
      }
      out.push({ id, latest, indexedFor });
    }
    return out;
  }

  /** The builds a model switch waits for, shown by GetCollectionIndex ([] once there is none). */
  expect(pending: PendingIndex[]): void {
    this.upcoming = new Map(pending.map((p) => [collectionOf(p.dataset)!, p]));
  }

  /** One look at a collection at a time: a request's look joins the poll's. */
  private check(id: string, model: LoadedModel): Promise<void> {
    let p = this.checks.get(id);
    if (!p) {
      p = this.follow(id, model).finally(() => this.checks.delete(id));
      this.checks.set(id, p);
    }
    return p;
  }

  private async follow(id: string, model: LoadedModel): Promise<void> {
    const { store, builder } = this.opts;
    const pointer = await readCollectionPointer(store, id);
    if (!pointer && !(await readCollectionRecord(store, id))) return this.drop(id);
    const f = this.entry(id);
    f.latest = pointer?.version ?? "";
    if (!pointer) return; // created, its first sync not yet published: nothing to index
    const current = f.served.get(model.version);
    if (current?.version === f.latest) {
      f.pending = undefined;
      return;
    }
    const newest = await this.newestIndexed(id, f.latest, model.version);
    if (newest === f.latest) f.pending = undefined;
    else {
      const pair = { model: model.version, dataset: collectionDataset(id), datasetVersion: f.latest };
      f.pending = { ...pair, ...(await ensureReported(builder, pair)) };
    }
    if (newest && newest !== current?.version) await this.load(f, id, newest, model);
  }

  /** The newest version with a stored index for the model: the latest, else its nearest indexed ancestor. */
  private async newestIndexed(id: string, latest: string, modelVersion: string): Promise<string | undefined> {
    if (await indexStored(this.opts.store, modelVersion, collectionDataset(id), latest)) return latest;
    return nearestIndexedAncestor(this.opts.store, modelVersion, id, latest);
  }

  /** Loads a stored index and swaps it in (dropped when its model stopped being wanted meanwhile). */
  private async load(f: Followed, id: string, version: string, model: LoadedModel): Promise<void> {
    const { store, logger } = this.opts;
    const [loaded, published] = await Promise.all([
      loadIndex(store, model.version, collectionDataset(id), version, "exact", model.queryBank),
      readCollectionVersion(store, id, version),
    ]);
    if (!loaded || !published) throw new Error(`collection ${id} ${version}: its index for ${model.version} or its manifest is gone`);
    if (loaded.doc.dim !== model.dim) throw new Error(`collection ${id} ${version}: ${loaded.doc.dim}-d index, model ${model.version} is ${model.dim}-d`);
    if (!this.models.has(model.version) || this.followed.get(id) !== f) return;
    f.served.set(model.version, new ServedCollection(id, version, loaded.index, published.manifest, loaded.doc));
    logger.info({ collection: id, version, model: model.version, photos: loaded.index.images, latest: f.latest }, "collection index serving");
  }

  private entry(id: string): Followed {
    let f = this.followed.get(id);
    if (!f) this.followed.set(id, (f = { latest: "", served: new Map(), pending: undefined }));
    return f;
  }

  private drop(id: string): void {
    if (this.followed.delete(id)) this.opts.logger.info({ collection: id }, "collection deleted: no longer served");
    this.upcoming.delete(id);
  }
}
