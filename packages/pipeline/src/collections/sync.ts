/**
 * One sync of a collection, the local runner: plan (list the source, diff against the catalog) →
 * ingest what is new or changed → publish a new version. The same steps run as an Argo workflow
 * (argo/collection-workflowtemplate.yaml) when `offload` takes the plan: its ingest is split over
 * worker pods, each resumable, and its publish step is `publishShards`.
 *
 * The catalog (one record per source file) is the source of truth, so a sync reads only files
 * whose ETag, or size and mtime, changed. The embedding happens after the publish, in Ranking's
 * index build, which re-uses the previous version's embeddings by content: a sync that changed
 * nothing publishes the same version and nothing is embedded.
 */
import type { ObjectStore } from "@glimpse/objectstore";
import { catalogKey, readCollectionVersion, type CatalogEntry, type CollectionManifest, type SyncOutcome, type SyncPlan } from "@glimpse/layout";
import { ingestFiles, knownPhotos } from "./ingest.js";
import { planSync, type PlanOptions } from "./plan.js";
import { publishPlan } from "./publish.js";

export interface SyncProgress {
  stage: "list" | "ingest" | "publish";
  done: number;
  total: number;
  /** Files new or changed since the catalog's record. */
  changed: number;
  startedAt: number;
}

export interface SyncResult {
  version: string;
  /** False when the version published equals the previous one (nothing changed). */
  changed: boolean;
  previousVersion: string;
  /** Files read and hashed, and of those decoded (the rest were known by content). */
  read: number;
  decoded: number;
  removed: number;
  manifest: CollectionManifest;
  /** Where the ingest ran: here, or in a workflow (its name). */
  workflow?: string;
}

export interface SyncOptions extends PlanOptions {
  onProgress?: (p: SyncProgress) => void;
  /** Files read and decoded at once (default 4: decoding is libvips' threads, reading is I/O). */
  concurrency?: number;
  /** Photos ingested already (an upload CreatePhoto checked and stored): known by content, not decoded again. */
  known?: CatalogEntry[] | undefined;
  /**
   * Given the plan, runs its ingest and publish elsewhere (a workflow) and says what was
   * published, or returns undefined to ingest here.
   */
  offload?: (plan: SyncPlan, progress: (done: number) => void) => Promise<(SyncOutcome & { workflow: string }) | undefined>;
}

/** What a workflow's publish step did, as the local runner says it. */
export async function syncResultOf(store: ObjectStore, id: string, outcome: SyncOutcome & { workflow: string }): Promise<SyncResult> {
  const published = await readCollectionVersion(store, id, outcome.version);
  if (!published) throw new Error(`the workflow ${outcome.workflow} published version ${outcome.version}, which cannot be read`);
  return { version: outcome.version, changed: outcome.changed, previousVersion: outcome.previous_version, read: outcome.read, decoded: outcome.decoded, removed: outcome.removed, manifest: published.manifest, workflow: outcome.workflow };
}

/** The catalog is saved this often during a long ingest, so an interrupted sync resumes where it was. */
const CATALOG_SAVE_EVERY = 256;

export async function syncCollection(opts: SyncOptions): Promise<SyncResult> {
  const { store, record } = opts;
  const id = record.id;
  const startedAt = Date.now();
  const report = (p: Omit<SyncProgress, "startedAt">) => opts.onProgress?.({ ...p, startedAt });
  report({ stage: "list", done: 0, total: 0, changed: 0 });
  const { plan, catalog, previous, files } = await planSync(opts);
  const total = plan.todo.length;
  report({ stage: "ingest", done: 0, total, changed: total });

  const remote = await opts.offload?.(plan, (done) => report({ stage: "ingest", done, total, changed: total }));
  if (remote) {
    report({ stage: "publish", done: 1, total: 1, changed: total });
    return syncResultOf(store, id, remote);
  }

  const ingested: CatalogEntry[] = [];
  const save = () => {
    const entries = { ...catalog.entries };
    for (const e of ingested) entries[e.path] = e;
    return store.put(catalogKey(id), JSON.stringify({ ...catalog, entries }), { contentType: "application/json" });
  };
  const counts = await ingestFiles(plan.todo, {
    store,
    collection: id,
    read: (path) => files.get(path)!.read(),
    known: knownPhotos([...Object.values(catalog.entries), ...(opts.known ?? [])]),
    signal: opts.signal,
    concurrency: opts.concurrency,
    onEntry: async (entry) => {
      ingested.push(entry);
      report({ stage: "ingest", done: ingested.length, total, changed: total });
      if (ingested.length % CATALOG_SAVE_EVERY === 0) await save();
    },
  });

  report({ stage: "publish", done: 0, total: 1, changed: total });
  const published = await publishPlan(store, plan, catalog, ingested, previous);
  report({ stage: "publish", done: 1, total: 1, changed: total });
  return { version: published.version, changed: published.changed, previousVersion: previous?.version ?? "", read: counts.read, decoded: counts.decoded, removed: plan.removed, manifest: published.manifest };
}
