/**
 * Collections: their records, one sync at a time each, watches, and their state as the API
 * shows it. A sync is planned here; its ingest (decoding and hashing) runs here or, when large,
 * as an Argo workflow (workflow.ts); the embedding is Ranking's index build, on Kubernetes an
 * index Job.
 */
import { watch as fsWatch, type FSWatcher } from "node:fs";
import { isAbsolute } from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate, durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { data, collection as pb, errorWithReason, invalidArgument, notFound, permissionDenied } from "@glimpse/api";
import type { Logger } from "@glimpse/logging";
import { PreconditionFailedError, type ObjectStore } from "@glimpse/objectstore";
import {
  collectionName,
  collectionPrefix,
  collectionRecordKey,
  collectionStatusKey,
  listCollectionIds,
  readCollectionRecord,
  readCollectionStatus,
  readCollectionVersion,
  readCatalog,
  readSyncPlan,
  COLLECTION_SCHEMA,
  type Catalog,
  type CatalogEntry,
  type CollectionManifest,
  type CollectionRecord,
  type CollectionStatus,
} from "@glimpse/layout";
import { folderUrl, otherBucketConfig, SourceRefusedError, SourceUnavailableError, syncCollection, syncResultOf, type SourceAllowList, type SyncProgress, type SyncResult } from "@glimpse/pipeline";
import { Subscription } from "@glimpse/rpc";
import { ShuttingDown, type CollectionWorkflows, type WorkflowHandle } from "./workflow.js";
import { dropReason, watchesKey, type StorageEvent } from "./events.js";

/** What search serves of a collection (Ranking's GetCollectionIndex); undefined when Ranking cannot say. */
export type ServingLookup = (name: string) => Promise<{ servingVersion: string; modelVersion: string; nearDuplicates: bigint } | undefined>;

interface Live {
  record: CollectionRecord;
  status: CollectionStatus;
  progress?: SyncProgress | undefined;
  running?: Promise<SyncResult | undefined> | undefined;
  /** A sync was asked for while one ran: run once more after it. */
  again: boolean;
  abort?: AbortController;
  listeners: Set<() => void>;
  watcher?: FSWatcher;
  timer?: NodeJS.Timeout;
  debounce?: NodeJS.Timeout | undefined;
  lastResult?: SyncResult;
  /** Photos ingested already for the next sync (CreatePhoto's upload). */
  known: CatalogEntry[];
  /** A workflow a previous process left running for this collection's sync: followed, not started again. */
  resume?: WorkflowHandle | undefined;
  /** The published version, read from the store once and then kept by each sync (null: none yet). */
  published?: Promise<{ version: string; manifest: CollectionManifest } | null> | undefined;
}

export interface CollectionManagerOptions {
  store: ObjectStore;
  allow: SourceAllowList;
  logger: Logger;
  serving?: ServingLookup;
  /** A watched collection's periodic re-list (ms). */
  relistMs: number;
  /** inotify events and bucket notifications are gathered this long before a sync starts (ms). */
  debounceMs?: number;
  /** The configured store's bucket: a bucket notification for another bucket is ignored. */
  bucket?: string;
  /** GLIMPSE_SOURCE_SECRETS_DIR: the credentials of buckets on other endpoints. */
  secretsDir?: string | undefined;
  /** Large syncs' ingest as Argo workflows (the Argo executor); absent: every sync runs here. */
  workflows?: CollectionWorkflows | undefined;
}

/** What ReceiveStorageEvents made of a notification's records. */
export interface StorageEventsOutcome {
  applied: number;
  dropped: number;
  ignored: number;
  /** Ids of the collections whose sync was started (or re-queued). */
  synced: string[];
}

export class CollectionManager {
  private readonly live = new Map<string, Live>();
  private closed = false;

  constructor(private readonly opts: CollectionManagerOptions) {}

  /** Reads every collection; resumes syncs a restart interrupted and starts the watches. */
  async init(): Promise<void> {
    for (const id of await listCollectionIds(this.opts.store)) {
      const record = await readCollectionRecord(this.opts.store, id);
      if (!record) continue;
      const status = (await readCollectionStatus(this.opts.store, id)) ?? { state: "syncing", error: "", last_sync_time: "" };
      const live = this.track(record, status);
      if (status.workflow && status.sync) live.resume = { workflow: status.workflow, sync: status.sync };
      if (status.state === "syncing") this.startSync(live);
    }
  }

  private track(record: CollectionRecord, status: CollectionStatus): Live {
    const live: Live = { record, status, again: false, known: [], listeners: new Set() };
    this.live.set(record.id, live);
    if (record.watch) this.startWatch(live);
    return live;
  }

  async create(id: string, c: pb.Collection): Promise<pb.Collection> {
    const source = sourceSpec(c.source!);
    await this.checkSource(source);
    const record: CollectionRecord = { schema: COLLECTION_SCHEMA, id, display_name: c.displayName || id, source, watch: c.watch, create_time: new Date().toISOString() };
    try {
      await this.opts.store.put(collectionRecordKey(id), JSON.stringify(record), { contentType: "application/json", ifNoneMatch: "*" });
    } catch (err) {
      if (err instanceof PreconditionFailedError) throw errorWithReason(Code.AlreadyExists, "ALREADY_EXISTS", `collection ${id} already exists`, { collection: collectionName(id) });
      throw err;
    }
    const live = this.track(record, { state: "syncing", error: "", last_sync_time: "" });
    this.startSync(live);
    return this.describe(live);
  }

  /** The source, checked before anything is stored: PERMISSION_DENIED off the allow-list, INVALID_ARGUMENT when a folder is not there. */
  private async checkSource(source: CollectionRecord["source"]): Promise<void> {
    if (source.kind === "folder" && !isAbsolute(source.path)) {
      throw invalidArgument([{ field: "collection.source.folder.path", description: `must be an absolute path on the server (got ${JSON.stringify(source.path)})`, reason: "BAD_FORMAT" }]);
    }
    const urls = source.kind === "folder" ? [["collection.source.folder.path", folderUrl(source.path)]] : source.kind === "urls" ? source.urls.map((u, i) => [`collection.source.urls.urls[${i}]`, u]) : [];
    const refused = [];
    for (const [field, url] of urls) {
      try {
        await this.opts.allow.check(url!);
      } catch (err) {
        if (!(err instanceof SourceRefusedError)) throw err;
        refused.push({ field: field!, description: err.message, reason: err.reason });
      }
    }
    if (refused.length > 0) throw permissionDenied(refused);
    if (source.kind === "bucket" && (source.endpoint || source.bucket)) {
      if (source.endpoint) {
        try {
          await this.opts.allow.check(source.endpoint);
        } catch (err) {
          if (!(err instanceof SourceRefusedError)) throw err;
          throw permissionDenied([{ field: "collection.source.bucket.endpoint", description: err.message, reason: err.reason }]);
        }
      }
      try {
        otherBucketConfig(source, this.opts.store, this.opts.secretsDir);
      } catch (err) {
        if (!(err instanceof SourceUnavailableError)) throw err;
        throw invalidArgument([{ field: "collection.source.bucket", description: err.message, reason: "SOURCE_UNAVAILABLE" }]);
      }
    }
  }

  get(id: string): Live {
    const live = this.live.get(id);
    if (!live) throw notFound("collection", collectionName(id), `no collection ${collectionName(id)}`);
    return live;
  }

  async describe(liveOrId: Live | string): Promise<pb.Collection> {
    const live = typeof liveOrId === "string" ? this.get(liveOrId) : liveOrId;
    const { record, status, progress } = live;
    const published = await this.published(live).catch(() => null);
    const serving = await this.opts.serving?.(collectionName(record.id)).catch(() => undefined);
    const counts = published?.manifest.counts;
    return create(pb.CollectionSchema, {
      name: collectionName(record.id),
      displayName: record.display_name,
      source: sourceMessage(record.source),
      watch: record.watch,
      state: live.running ? pb.Collection_State.SYNCING : status.state === "failed" ? pb.Collection_State.FAILED : status.state === "ready" ? pb.Collection_State.READY : pb.Collection_State.SYNCING,
      counts: create(pb.CollectionCountsSchema, {
        found: BigInt(counts?.found ?? 0),
        indexed: BigInt(counts?.indexed ?? 0),
        skipped: BigInt(counts?.skipped ?? 0),
        skippedByReason: Object.fromEntries(Object.entries(counts?.skipped_by_reason ?? {}).map(([k, v]) => [k, BigInt(v)])),
        exactDuplicates: BigInt(counts?.exact_duplicates ?? 0),
        nearDuplicates: serving?.nearDuplicates ?? 0n,
      }),
      version: published?.version ?? "",
      servingVersion: serving?.servingVersion ?? "",
      modelVersion: serving?.modelVersion ?? "",
      createTime: timestampFromDate(new Date(record.create_time)),
      ...(status.last_sync_time ? { lastSyncTime: timestampFromDate(new Date(status.last_sync_time)) } : {}),
      ...(live.running && progress ? { sync: progressMessage(progress) } : {}),
      error: status.state === "failed" ? status.error : "",
    });
  }

  async list(): Promise<string[]> {
    return [...this.live.keys()].sort();
  }

  /** What the collection's latest.json names; a WatchCollection stream describes it every 250 ms, so it is not read each time. */
  private published(live: Live): Promise<{ version: string; manifest: CollectionManifest } | null> {
    live.published ??= readCollectionVersion(this.opts.store, live.record.id).then((p) => p ?? null);
    live.published.catch(() => (live.published = undefined)); // a failed read is tried again next time
    return live.published;
  }

  /** The published version's manifest (FAILED_PRECONDITION before the first sync published one). */
  async manifest(id: string): Promise<{ version: string; manifest: CollectionManifest }> {
    const published = await this.published(this.get(id));
    if (!published) throw errorWithReason(Code.FailedPrecondition, "NOT_SYNCED", `collection ${collectionName(id)} has no synced version yet`);
    return published;
  }

  record(id: string): CollectionRecord {
    return this.get(id).record;
  }

  async delete(id: string): Promise<void> {
    const live = this.live.get(id);
    if (!live) return; // idempotent
    this.live.delete(id);
    this.stopWatch(live);
    live.abort?.abort();
    await live.running?.catch(() => {});
    const store = this.opts.store;
    const keys: string[] = [];
    for await (const o of store.list(collectionPrefix(id))) keys.push(o.key);
    // the record last: a delete interrupted half-way is still a collection, deleted again
    for (const k of keys.filter((k) => k !== collectionRecordKey(id))) await store.delete(k);
    await store.delete(collectionRecordKey(id));
    for (const l of live.listeners) l();
  }

  /**
   * Starts a sync, or marks the running one to run again after it; resolves when the sync that
   * covers this request ends. `known`: photos ingested already (not decoded again).
   */
  sync(id: string, known: CatalogEntry[] = []): Promise<SyncResult | undefined> {
    const live = this.get(id);
    live.known.push(...known);
    return this.startSync(live);
  }

  private startSync(live: Live): Promise<SyncResult | undefined> {
    if (live.running) {
      live.again = true;
      // the covering sync is the next one: wait for this one, then for what it chains
      return live.running.then(() => live.running ?? live.lastResult);
    }
    const abort = new AbortController();
    live.abort = abort;
    const log = this.opts.logger.child({ collection: live.record.id });
    const run = async (): Promise<SyncResult | undefined> => {
      live.again = false;
      await this.saveStatus(live, { ...live.status, state: "syncing" });
      const workflows = this.opts.workflows;
      let handed: WorkflowHandle | undefined;
      const onProgress = (p: SyncProgress) => {
        live.progress = p;
        this.notify(live);
      };
      const follow = async (wf: CollectionWorkflows, h: WorkflowHandle, progress: (done: number) => void) => {
        handed = h;
        return { ...(await wf.wait(live.record.id, h, progress, abort.signal)), workflow: h.workflow };
      };
      try {
        let result: SyncResult;
        const resume = live.resume;
        live.resume = undefined;
        if (resume && workflows) {
          log.info({ workflow: resume.workflow }, "following the collection's ingest workflow a previous process started");
          const startedAt = Date.now();
          const total = (await readSyncPlan(this.opts.store, live.record.id, resume.sync))?.todo.length ?? 0;
          const outcome = await follow(workflows, resume, (done) => onProgress({ stage: "ingest", done, total, changed: total, startedAt }));
          result = await syncResultOf(this.opts.store, live.record.id, outcome);
        } else {
          const known = live.known.splice(0);
          result = await syncCollection({
            known,
            store: this.opts.store,
            allow: this.opts.allow,
            record: live.record,
            secretsDir: this.opts.secretsDir,
            signal: abort.signal,
            onProgress,
            ...(workflows
              ? {
                  offload: async (plan, progress) => {
                    if (!workflows.takes(live.record, plan)) return undefined;
                    const h = await workflows.start(plan);
                    await this.saveStatus(live, { ...live.status, state: "syncing", ...h });
                    return follow(workflows, h, progress);
                  },
                }
              : {}),
          });
        }
        live.lastResult = result;
        live.published = Promise.resolve({ version: result.version, manifest: result.manifest });
        log.info({ version: result.version, changed: result.changed, read: result.read, decoded: result.decoded, removed: result.removed, photos: result.manifest.counts.indexed, skipped: result.manifest.counts.skipped, ...(result.workflow ? { workflow: result.workflow } : {}) }, result.changed ? "collection synced: new version published" : "collection synced: nothing changed");
        await this.saveStatus(live, { state: "ready", error: "", last_sync_time: new Date().toISOString() });
        return result;
      } catch (err) {
        if (abort.signal.aborted) return undefined;
        const message = err instanceof SourceUnavailableError ? err.message : `sync failed: ${(err as Error).message}`;
        log.warn({ err: (err as Error).message }, "collection sync failed; the previous version keeps serving");
        await this.saveStatus(live, { state: "failed", error: message, last_sync_time: new Date().toISOString() });
        return undefined;
      } finally {
        if (handed && workflows && !abort.signal.aborted) await workflows.clean(live.record.id).catch((err: unknown) => log.warn({ err: (err as Error).message }, "cannot remove the sync's plan and shards"));
      }
    };
    const chain = async (): Promise<SyncResult | undefined> => {
      let result = await run();
      while (live.again && !abort.signal.aborted && !this.closed) result = await run();
      return result;
    };
    live.running = chain().finally(() => {
      live.running = undefined;
      live.progress = undefined;
      this.notify(live);
    });
    return live.running;
  }

  private async saveStatus(live: Live, status: CollectionStatus): Promise<void> {
    live.status = status;
    if (this.live.get(live.record.id) === live) await this.opts.store.put(collectionStatusKey(live.record.id), JSON.stringify(status), { contentType: "application/json" });
    this.notify(live);
  }

  private notify(live: Live): void {
    for (const l of live.listeners) l();
  }

  /** The collection now, then again at each change (progress at most every 250 ms). */
  async *watch(id: string, untilSynced: boolean, signal: AbortSignal): AsyncGenerator<data.WatchCollectionResponse> {
    const live = this.get(id);
    let pending: NodeJS.Timeout | undefined;
    const sub = new Subscription<null>(signal, () => live.listeners.delete(onChange));
    const onChange = () => {
      pending ??= setTimeout(() => {
        pending = undefined;
        sub.push(null);
      }, 250);
    };
    live.listeners.add(onChange);
    // ends on what the last message said, so a stream that ends "synced" says so itself
    const settled = (c: pb.Collection) => untilSynced && c.state !== pb.Collection_State.SYNCING;
    try {
      const first = await this.describe(live);
      yield create(data.WatchCollectionResponseSchema, { collection: first });
      if (settled(first)) return;
      for await (const _ of sub) {
        if (!this.live.has(id)) return;
        const c = await this.describe(live);
        yield create(data.WatchCollectionResponseSchema, { collection: c });
        if (settled(c)) return;
      }
    } finally {
      clearTimeout(pending);
      sub.close();
    }
  }

  /**
   * Bucket notifications: each record under a watched bucket collection's prefix that still tells
   * its catalog something starts that collection's sync (debounced with the others); stale and
   * already-applied records are dropped, records about no watched collection ignored.
   */
  async receiveStorageEvents(events: StorageEvent[]): Promise<StorageEventsOutcome> {
    const out: StorageEventsOutcome = { applied: 0, dropped: 0, ignored: 0, synced: [] };
    const catalogs = new Map<string, Promise<Catalog>>();
    const kicked = new Set<Live>();
    const log = this.opts.logger;
    for (const e of events) {
      const key = e.key;
      const targets = key === undefined || e.kind === "other" || this.opts.bucket === undefined || e.bucket !== this.opts.bucket ? [] : [...this.live.values()].filter((l) => watchesKey(l.record, key));
      if (targets.length === 0) {
        out.ignored++;
        continue;
      }
      let applied = false;
      for (const live of targets) {
        const id = live.record.id;
        if (!catalogs.has(id)) catalogs.set(id, readCatalog(this.opts.store, id));
        const catalog = await catalogs.get(id)!;
        const settled = !live.running && !live.debounce && !kicked.has(live);
        const why = dropReason(e, catalog.entries[key!], settled);
        if (why) {
          log.debug({ collection: id, key, event: e.kind, why }, "storage event dropped");
          continue;
        }
        applied = true;
        kicked.add(live);
      }
      if (applied) out.applied++;
      else out.dropped++;
    }
    for (const live of kicked) {
      this.kick(live);
      out.synced.push(live.record.id);
    }
    if (events.length > 0) log.info({ applied: out.applied, dropped: out.dropped, ignored: out.ignored, collections: out.synced }, "storage events received");
    return out;
  }

  /** A change was seen (inotify, a bucket notification): sync once the changes stop for debounceMs. */
  private kick(live: Live): void {
    if (this.closed || this.live.get(live.record.id) !== live) return;
    clearTimeout(live.debounce);
    live.debounce = setTimeout(() => {
      live.debounce = undefined;
      void this.startSync(live);
    }, this.opts.debounceMs ?? 1_000);
  }

  private startWatch(live: Live): void {
    const kick = () => this.kick(live);
    if (live.record.source.kind === "folder") {
      try {
        live.watcher = fsWatch(live.record.source.path, { recursive: true }, kick);
        live.watcher.on("error", (err) => this.opts.logger.warn({ collection: live.record.id, err: err.message }, "folder watch failed; the periodic re-list still runs"));
      } catch (err) {
        this.opts.logger.warn({ collection: live.record.id, err: (err as Error).message }, "cannot watch the folder; the periodic re-list still runs");
      }
    }
    live.timer = setInterval(() => {
      if (!live.running) void this.startSync(live);
    }, this.opts.relistMs);
    live.timer.unref();
  }

  private stopWatch(live: Live): void {
    live.watcher?.close();
    clearInterval(live.timer);
    clearTimeout(live.debounce);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const live of this.live.values()) {
      this.stopWatch(live);
      live.abort?.abort(new ShuttingDown("the Data service is shutting down"));
    }
    await Promise.all([...this.live.values()].map((l) => l.running?.catch(() => {})));
  }
}

function sourceSpec(s: pb.CollectionSource): CollectionRecord["source"] {
  switch (s.kind.case) {
    case "folder":
      return { kind: "folder", path: s.kind.value.path };
    case "bucket": {
      const b = s.kind.value;
      return { kind: "bucket", prefix: b.prefix, ...(b.endpoint ? { endpoint: b.endpoint } : {}), ...(b.bucket ? { bucket: b.bucket } : {}), ...(b.credentialsSecret ? { credentials_secret: b.credentialsSecret } : {}) };
    }
    case "urls":
      return { kind: "urls", urls: [...s.kind.value.urls] };
    case "uploads":
    default:
      return { kind: "uploads" };
  }
}

function sourceMessage(s: CollectionRecord["source"]): pb.CollectionSource {
  switch (s.kind) {
    case "folder":
      return create(pb.CollectionSourceSchema, { kind: { case: "folder", value: { path: s.path } } });
    case "bucket":
      return create(pb.CollectionSourceSchema, { kind: { case: "bucket", value: { prefix: s.prefix, endpoint: s.endpoint ?? "", bucket: s.bucket ?? "", credentialsSecret: s.credentials_secret ?? "" } } });
    case "urls":
      return create(pb.CollectionSourceSchema, { kind: { case: "urls", value: { urls: s.urls } } });
    case "uploads":
      return create(pb.CollectionSourceSchema, { kind: { case: "uploads", value: {} } });
  }
}

function progressMessage(p: SyncProgress): pb.SyncProgress {
  const seconds = (Date.now() - p.startedAt) / 1000;
  const rate = p.stage === "ingest" && seconds > 0 ? p.done / seconds : 0;
  const stage = { list: pb.SyncProgress_Stage.LIST, ingest: pb.SyncProgress_Stage.INGEST, publish: pb.SyncProgress_Stage.PUBLISH }[p.stage];
  return create(pb.SyncProgressSchema, {
    stage,
    done: BigInt(p.done),
    total: BigInt(p.total),
    changed: BigInt(p.changed),
    photosPerSecond: rate,
    ...(rate > 0 ? { eta: durationFromMs(Math.round(((p.total - p.done) / rate) * 1000)) } : {}),
    startTime: timestampFromDate(new Date(p.startedAt)),
  });
}
