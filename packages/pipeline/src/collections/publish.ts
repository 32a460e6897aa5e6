/**
 * The last step of a collection sync: the next catalog (kept entries and the ingested ones), the
 * version's manifest made from it, and the version published atomically (the manifest first, the
 * pointer last: a search never sees a half-finished sync). A sync that changed nothing publishes
 * nothing and keeps the version.
 */
import type { ObjectStore } from "@glimpse/objectstore";
import {
  CATALOG_SCHEMA,
  catalogKey,
  COLLECTION_MANIFEST_SCHEMA,
  publishCollectionVersion,
  readCatalog,
  readCollectionVersion,
  readSyncPlan,
  readSyncOutcome,
  readSyncShard,
  syncOutcomeKey,
  type Catalog,
  type CatalogEntry,
  type CollectionManifest,
  type CollectionPhoto,
  type PublishedCollection,
  type SyncOutcome,
  type SyncPlan,
} from "@glimpse/layout";
import { IMAGE_FORMAT } from "../images.js";
import { SyncPlanError } from "./ingest.js";

export interface Published {
  version: string;
  changed: boolean;
  manifest: CollectionManifest;
}

/** Writes the next catalog and publishes its version (unless it equals the previous one). */
export async function publishPlan(store: ObjectStore, plan: SyncPlan, catalog: Catalog, ingested: Iterable<CatalogEntry>, previous: PublishedCollection | undefined): Promise<Published> {
  const next: Catalog = { schema: CATALOG_SCHEMA, entries: {} };
  for (const path of plan.keep) next.entries[path] = catalog.entries[path]!;
  for (const e of ingested) next.entries[e.path] = e;
  const manifest = manifestOf(plan.collection, next, previous?.version ?? "");
  // Nothing changed: the same photos and skips as the published version, which stays.
  const same = previous !== undefined && JSON.stringify({ ...previous.manifest, previous_version: "" }) === JSON.stringify({ ...manifest, previous_version: "" });
  await store.put(catalogKey(plan.collection), JSON.stringify(next), { contentType: "application/json" });
  if (same) return { version: previous.version, changed: false, manifest: previous.manifest };
  return { version: await publishCollectionVersion(store, manifest), changed: true, manifest };
}

/**
 * The workflow's publish step: every shard must be complete (a worker that never finished fails the
 * sync, and the previous version keeps serving); writes `result.json` for the Data service.
 */
export async function publishShards(store: ObjectStore, collection: string, sync: string): Promise<SyncOutcome> {
  const done = await readSyncOutcome(store, collection, sync);
  if (done) return done; // a retried publish step whose first attempt got this far
  const plan = await readSyncPlan(store, collection, sync);
  if (!plan) throw new SyncPlanError(`collection ${collection} has no sync ${sync}`);
  const ingested: CatalogEntry[] = [];
  let read = 0;
  let decoded = 0;
  for (let i = 0; i < plan.shards; i++) {
    const shard = await readSyncShard(store, collection, sync, i);
    if (!shard?.complete) throw new SyncPlanError(`sync ${sync}: shard ${i} of ${plan.shards} did not finish`);
    ingested.push(...shard.entries);
    read += shard.read;
    decoded += shard.decoded;
  }
  const todo = new Set(plan.todo.map((f) => f.path));
  const got = new Set(ingested.map((e) => e.path));
  if (got.size !== todo.size || [...todo].some((p) => !got.has(p))) throw new SyncPlanError(`sync ${sync}: the shards hold ${got.size} of the plan's ${todo.size} files`);
  const catalog = await readCatalog(store, collection);
  const previous = await readCollectionVersion(store, collection);
  if ((previous?.version ?? "") !== plan.previous_version) throw new SyncPlanError(`sync ${sync} was planned on version ${plan.previous_version || "(none)"}, but ${previous?.version ?? "(none)"} is published`);
  const published = await publishPlan(store, plan, catalog, ingested, previous);
  const outcome: SyncOutcome = { version: published.version, previous_version: plan.previous_version, changed: published.changed, read, decoded, removed: plan.removed };
  await store.put(syncOutcomeKey(collection, sync), JSON.stringify(outcome), { contentType: "application/json" });
  return outcome;
}

/** The version's manifest from the catalog: one photo per distinct content, skipped files with their reasons. */
export function manifestOf(id: string, catalog: Catalog, previousVersion: string): CollectionManifest {
  const entries = Object.values(catalog.entries).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const photos = new Map<string, CollectionPhoto>();
  const skipped: CollectionManifest["skipped"] = [];
  const byReason: Record<string, number> = {};
  let duplicates = 0;
  for (const e of entries) {
    if (e.state !== "ok" || !e.sha256 || !e.image) {
      const reason = e.reason ?? "NOT_AN_IMAGE";
      skipped.push({ path: e.path, reason, message: e.message ?? "" });
      byReason[reason] = (byReason[reason] ?? 0) + 1;
      continue;
    }
    const photoId = e.sha256.slice(0, 16);
    const seen = photos.get(photoId);
    if (seen) {
      seen.duplicate_paths.push(e.path);
      duplicates++;
      continue;
    }
    photos.set(photoId, {
      photo_id: photoId,
      sha256: e.sha256,
      path: e.path,
      duplicate_paths: [],
      size: e.size,
      width: e.width ?? 0,
      height: e.height ?? 0,
      taken_time: e.taken_time ?? new Date(e.mtime).toISOString(),
      camera_model: e.camera_model ?? "",
      image: e.image,
    });
  }
  const list = [...photos.values()].sort((a, b) => (a.photo_id < b.photo_id ? -1 : 1));
  return {
    schema: COLLECTION_MANIFEST_SCHEMA,
    collection: id,
    image_format: `${IMAGE_FORMAT.format} ${IMAGE_FORMAT.width}x${IMAGE_FORMAT.height} q${IMAGE_FORMAT.quality} ${IMAGE_FORMAT.fit}`,
    previous_version: previousVersion,
    photos: list,
    skipped,
    counts: { found: entries.length, indexed: list.length, skipped: skipped.length, exact_duplicates: duplicates, skipped_by_reason: byReason },
  };
}
