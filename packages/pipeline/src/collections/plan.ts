/**
 * The first step of a collection sync: list the source and diff it against the catalog. What is
 * new or changed (by ETag, or size and mtime) is the plan's `todo`; the rest keeps its catalog
 * entry. Listing reads no file, so this step is cheap and runs where the sync is decided (the
 * Data service); the ingest of `todo` runs here too or on ingest workers (collection-ingest).
 */
import { randomBytes } from "node:crypto";
import type { ObjectStore } from "@glimpse/objectstore";
import { readCatalog, readCollectionVersion, SYNC_PLAN_SCHEMA, type Catalog, type CatalogEntry, type CollectionRecord, type PublishedCollection, type SyncPlan } from "@glimpse/layout";
import type { SourceAllowList } from "../sources.js";
import { listSource, type SourceFile } from "./sources.js";

export interface PlanOptions {
  store: ObjectStore;
  allow: SourceAllowList;
  record: CollectionRecord;
  signal?: AbortSignal | undefined;
  /** GLIMPSE_SOURCE_SECRETS_DIR (a bucket on another endpoint). */
  secretsDir?: string | undefined;
}

export interface PlannedSync {
  plan: SyncPlan;
  catalog: Catalog;
  previous: PublishedCollection | undefined;
  /** The listed files by path, with their readers (for an ingest in this process). */
  files: Map<string, SourceFile>;
}

export const newSyncId = (): string => `${Date.now().toString(36)}${randomBytes(4).toString("hex")}`;

function unchanged(entry: CatalogEntry | undefined, f: SourceFile): entry is CatalogEntry {
  if (!entry) return false;
  if (f.etag !== undefined) return entry.etag === f.etag && entry.size === f.size;
  return entry.size === f.size && entry.mtime === f.mtime;
}

export async function planSync(opts: PlanOptions): Promise<PlannedSync> {
  const { store, record } = opts;
  const id = record.id;
  const catalog = await readCatalog(store, id);
  const previous = await readCollectionVersion(store, id);
  const listed: SourceFile[] = [];
  for await (const f of listSource(record.source, { store, allow: opts.allow, collection: id, secretsDir: opts.secretsDir })) {
    opts.signal?.throwIfAborted();
    listed.push(f);
  }
  listed.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const paths = new Set(listed.map((f) => f.path));
  const keep: string[] = [];
  const todo: SyncPlan["todo"] = [];
  for (const f of listed) {
    if (unchanged(catalog.entries[f.path], f)) keep.push(f.path);
    else todo.push({ path: f.path, size: f.size, mtime: f.mtime, ...(f.etag !== undefined ? { etag: f.etag } : {}), ...(f.skip ? { skip: f.skip } : {}) });
  }
  const plan: SyncPlan = {
    schema: SYNC_PLAN_SCHEMA,
    collection: id,
    sync: newSyncId(),
    previous_version: previous?.version ?? "",
    source: record.source,
    keep,
    todo,
    removed: Object.keys(catalog.entries).filter((p) => !paths.has(p)).length,
    shards: 1,
  };
  return { plan, catalog, previous, files: new Map(listed.map((f) => [f.path, f])) };
}
