/**
 * Collections in the object store: the one home of their keys and documents. The Data service
 * writes them (the catalog and each sync's version); Ranking reads the published versions to
 * embed and serve them.
 *
 *   collections/<id>/collection.json                 → CollectionRecord (what the user created)
 *   collections/<id>/catalog.json                    → Catalog: one record per source file, the sync's source of truth
 *   collections/<id>/status.json                     → CollectionStatus: the latest sync's outcome
 *   collections/<id>/versions/<version>/manifest.json → CollectionManifest (immutable, no timestamps)
 *   collections/<id>/latest.json                     → CollectionPointer (written last: a sync is published)
 *   collections/<id>/blobs/sha256/<hex>              → the normalised copy each photo is embedded from (content-addressed)
 *   collections/<id>/thumbs/<photo sha256>.jpg       → thumbnails (no personal metadata)
 *   collections/<id>/uploads/<name>                  → the originals of an uploads collection
 *   collections/<id>/syncs/<sync>/plan.json          → SyncPlan: what one sync ingests (written before its ingest starts)
 *   collections/<id>/syncs/<sync>/shard-<i>.json     → SyncShard: one ingest worker's catalog entries (resumable)
 *   collections/<id>/syncs/<sync>/result.json        → SyncOutcome: what the publish step published
 *
 * A collection version is the first 16 hex digits of the sha256 of its manifest's bytes, so a
 * sync that changed nothing publishes the same version, and Ranking has nothing to embed.
 */
import type { ObjectStore } from "@glimpse/objectstore";
import { DATASETS_PREFIX, sha256Hex } from "./datasets.js";
import { MODELS_PREFIX } from "./models.js";

export const COLLECTION_SCHEMA = "glimpse.collection/v1";
export const CATALOG_SCHEMA = "glimpse.collection.catalog/v1";
export const COLLECTION_MANIFEST_SCHEMA = "glimpse.collection.manifest/v1";

export const COLLECTIONS_PREFIX = "collections/";
export const collectionPrefix = (id: string): string => `${COLLECTIONS_PREFIX}${id}/`;
/** A key Glimpse itself writes in the bucket (datasets, collections, models): never one of a user's photos. */
export const isGlimpseKey = (key: string): boolean => [COLLECTIONS_PREFIX, DATASETS_PREFIX, MODELS_PREFIX].some((p) => key.startsWith(p));
export const collectionRecordKey = (id: string): string => `${collectionPrefix(id)}collection.json`;
export const catalogKey = (id: string): string => `${collectionPrefix(id)}catalog.json`;
export const collectionStatusKey = (id: string): string => `${collectionPrefix(id)}status.json`;
export const collectionLatestKey = (id: string): string => `${collectionPrefix(id)}latest.json`;
export const collectionManifestKey = (id: string, version: string): string => `${collectionPrefix(id)}versions/${version}/manifest.json`;
export const collectionBlobKey = (id: string, sha256: string): string => `${collectionPrefix(id)}blobs/sha256/${sha256}`;
export const thumbnailKey = (id: string, sha256: string): string => `${collectionPrefix(id)}thumbs/${sha256}.jpg`;
export const uploadsPrefix = (id: string): string => `${collectionPrefix(id)}uploads/`;

/** Resource names (AIP-122) ↔ ids. */
export const collectionName = (id: string): string => `collections/${id}`;
export const photoName = (collection: string, photoId: string): string => `collections/${collection}/photos/${photoId}`;
export function parseCollectionName(name: string): string | undefined {
  return /^collections\/([a-z][a-z0-9-]{0,62})$/.exec(name)?.[1];
}
export function parsePhotoName(name: string): { collection: string; photoId: string } | undefined {
  const m = /^collections\/([a-z][a-z0-9-]{0,62})\/photos\/([0-9a-f]{16})$/.exec(name);
  return m ? { collection: m[1]!, photoId: m[2]! } : undefined;
}
/** The gateway path of a photo's thumbnail (GetPhotoThumbnail's REST path). */
export const thumbnailUrl = (collection: string, photoId: string): string => `/v1/collections/${collection}/photos/${photoId}/thumbnail`;

export type CollectionSourceSpec =
  | { kind: "folder"; path: string }
  | { kind: "bucket"; prefix: string; endpoint?: string; bucket?: string; credentials_secret?: string }
  | { kind: "urls"; urls: string[] }
  | { kind: "uploads" };

/** `collection.json`. */
export interface CollectionRecord {
  schema: typeof COLLECTION_SCHEMA;
  id: string;
  display_name: string;
  source: CollectionSourceSpec;
  watch: boolean;
  /** ISO 8601. */
  create_time: string;
}

export type SkipReason = "EMPTY" | "NOT_AN_IMAGE" | "TRUNCATED" | "TOO_LARGE" | "UNSUPPORTED_FORMAT" | "FETCH_FAILED" | "OUTSIDE_SOURCE";

/** One source file as the catalog last saw it. */
export interface CatalogEntry {
  path: string;
  /** What says the file changed without reading it: the object's ETag, or size and mtime. */
  etag?: string;
  size: number;
  /** ms since the epoch. */
  mtime: number;
  sha256?: string;
  state: "ok" | "skipped";
  reason?: SkipReason;
  message?: string;
  width?: number;
  height?: number;
  /** ISO 8601: EXIF DateTimeOriginal, else the file's mtime. */
  taken_time?: string;
  camera_model?: string;
  /** The normalised copy's blob. */
  image?: { key: string; sha256: string; size: number };
}

/** `catalog.json`: entries by source path. */
export interface Catalog {
  schema: typeof CATALOG_SCHEMA;
  entries: Record<string, CatalogEntry>;
}

export interface CollectionPhoto {
  photo_id: string;
  sha256: string;
  /** The first path (in path order) with these bytes; the others are `duplicate_paths`. */
  path: string;
  duplicate_paths: string[];
  size: number;
  width: number;
  height: number;
  taken_time: string;
  camera_model: string;
  image: { key: string; sha256: string; size: number };
}

/** `manifest.json` of a collection version: photos by photo id, skipped files by path. */
export interface CollectionManifest {
  schema: typeof COLLECTION_MANIFEST_SCHEMA;
  collection: string;
  /** The normalisation the embedded copies went through (the dataset pipeline's image format). */
  image_format: string;
  /**
   * The version this sync started from ("" for the first): Ranking re-uses that version's
   * embeddings (by the normalised copy's sha256) and embeds only the rest, and every worker of
   * one index build agrees on which photos those are.
   */
  previous_version: string;
  photos: CollectionPhoto[];
  skipped: { path: string; reason: SkipReason; message: string }[];
  counts: { found: number; indexed: number; skipped: number; exact_duplicates: number; skipped_by_reason: Record<string, number> };
}

/** `status.json`: how the latest sync ended (a sync under way says "syncing"; one found so after a restart is resumed). */
export interface CollectionStatus {
  state: "syncing" | "ready" | "failed";
  error: string;
  /** ISO 8601; "" before the first sync ended. */
  last_sync_time: string;
  /** The Argo Workflow running this sync's ingest, while it runs: a restarted Data service waits for it instead of starting another. */
  workflow?: string;
  /** That workflow's sync id (its folder under syncs/). */
  sync?: string;
}

export const SYNC_PLAN_SCHEMA = "glimpse.collection.sync-plan/v1";
export const SYNC_SHARD_SCHEMA = "glimpse.collection.sync-shard/v1";

/** A listed file to read: what the catalog will record of it, and a skip decided without reading it. */
export interface PlannedFile {
  path: string;
  size: number;
  mtime: number;
  etag?: string;
  skip?: { reason: SkipReason; message: string };
}

/**
 * `syncs/<sync>/plan.json`: one sync's diff of the source against the catalog. The files to read
 * (`todo`) are split into `shards` contiguous slices, one per ingest worker; `keep` are the paths
 * whose catalog entries stand. Written once, before any worker starts.
 */
export interface SyncPlan {
  schema: typeof SYNC_PLAN_SCHEMA;
  collection: string;
  sync: string;
  previous_version: string;
  source: CollectionSourceSpec;
  keep: string[];
  todo: PlannedFile[];
  removed: number;
  shards: number;
}

/** `syncs/<sync>/shard-<i>.json`: the catalog entries of shard i's files, saved as it goes (a retried worker resumes). */
export interface SyncShard {
  schema: typeof SYNC_SHARD_SCHEMA;
  sync: string;
  shard: number;
  complete: boolean;
  /** Files read and hashed, and of those decoded (the rest were known by content). */
  read: number;
  decoded: number;
  entries: CatalogEntry[];
}

/** `syncs/<sync>/result.json`: what the publish step did. */
export interface SyncOutcome {
  version: string;
  previous_version: string;
  changed: boolean;
  read: number;
  decoded: number;
  removed: number;
}

export const syncPrefix = (id: string, sync: string): string => `${collectionPrefix(id)}syncs/${sync}/`;
export const syncsPrefix = (id: string): string => `${collectionPrefix(id)}syncs/`;
export const syncPlanKey = (id: string, sync: string): string => `${syncPrefix(id, sync)}plan.json`;
export const syncShardKey = (id: string, sync: string, shard: number): string => `${syncPrefix(id, sync)}shard-${shard}.json`;
export const syncOutcomeKey = (id: string, sync: string): string => `${syncPrefix(id, sync)}result.json`;
/** A sync id: its start time and a random suffix, sortable. */
export const SYNC_ID_RE = /^[0-9a-z]{1,40}$/;

/** Shard i's slice of a plan's files: contiguous, the first `todo.length % shards` one longer. */
export function shardSlice(todoLength: number, shards: number, shard: number): { first: number; count: number } {
  const base = Math.floor(todoLength / shards);
  const extra = todoLength % shards;
  return { first: shard * base + Math.min(shard, extra), count: base + (shard < extra ? 1 : 0) };
}

export async function readSyncPlan(store: ObjectStore, id: string, sync: string): Promise<SyncPlan | undefined> {
  return readJson<SyncPlan>(store, syncPlanKey(id, sync));
}

export async function readSyncShard(store: ObjectStore, id: string, sync: string, shard: number): Promise<SyncShard | undefined> {
  return readJson<SyncShard>(store, syncShardKey(id, sync, shard));
}

export async function readSyncOutcome(store: ObjectStore, id: string, sync: string): Promise<SyncOutcome | undefined> {
  return readJson<SyncOutcome>(store, syncOutcomeKey(id, sync));
}

export async function readCollectionStatus(store: ObjectStore, id: string): Promise<CollectionStatus | undefined> {
  return readJson<CollectionStatus>(store, collectionStatusKey(id));
}

/** `latest.json`. */
export interface CollectionPointer {
  version: string;
  /** ISO 8601. */
  published_at: string;
}

export const COLLECTION_VERSION_RE = /^[0-9a-f]{16}$/;


export function collectionManifestBytes(m: CollectionManifest): Buffer {
  return Buffer.from(JSON.stringify(m), "utf8");
}

export const collectionVersionOf = (bytes: Uint8Array): string => sha256Hex(bytes).slice(0, 16);

async function readJson<T>(store: ObjectStore, key: string): Promise<T | undefined> {
  const info = await store.stat(key);
  if (!info) return undefined;
  return JSON.parse((await store.getBuffer(key)).toString("utf8")) as T;
}

export async function readCollectionRecord(store: ObjectStore, id: string): Promise<CollectionRecord | undefined> {
  const r = await readJson<CollectionRecord>(store, collectionRecordKey(id));
  if (r && r.schema !== COLLECTION_SCHEMA) throw new Error(`collection ${id}: unsupported schema ${r.schema}`);
  return r;
}

export async function readCatalog(store: ObjectStore, id: string): Promise<Catalog> {
  const c = await readJson<Catalog>(store, catalogKey(id));
  if (c && c.schema !== CATALOG_SCHEMA) throw new Error(`collection ${id}: unsupported catalog schema ${c.schema}`);
  return c ?? { schema: CATALOG_SCHEMA, entries: {} };
}

export async function readCollectionPointer(store: ObjectStore, id: string): Promise<CollectionPointer | undefined> {
  return readJson<CollectionPointer>(store, collectionLatestKey(id));
}

export interface PublishedCollection {
  id: string;
  version: string;
  manifest: CollectionManifest;
  pointer?: CollectionPointer;
}

/** A published version (default: latest.json's), its manifest checked against its version; undefined before the first publish. */
export async function readCollectionVersion(store: ObjectStore, id: string, version?: string): Promise<PublishedCollection | undefined> {
  let pointer: CollectionPointer | undefined;
  if (version === undefined) {
    pointer = await readCollectionPointer(store, id);
    if (!pointer) return undefined;
    version = pointer.version;
  }
  if (!COLLECTION_VERSION_RE.test(version)) throw new Error(`bad collection version ${JSON.stringify(version)}`);
  const bytes = await store.getBuffer(collectionManifestKey(id, version));
  if (collectionVersionOf(bytes) !== version) throw new Error(`collection ${id}: manifest does not hash to version ${version}`);
  const manifest = JSON.parse(bytes.toString("utf8")) as CollectionManifest;
  if (manifest.schema !== COLLECTION_MANIFEST_SCHEMA) throw new Error(`collection ${id}: unsupported manifest schema ${manifest.schema}`);
  return { id, version, manifest, ...(pointer ? { pointer } : {}) };
}

/** Ids of every collection with a record, sorted. */
export async function listCollectionIds(store: ObjectStore): Promise<string[]> {
  const ids: string[] = [];
  let pageToken: string | undefined;
  do {
    const page = await store.listPage(COLLECTIONS_PREFIX, { delimiter: "/", ...(pageToken ? { pageToken } : {}) });
    for (const p of page.prefixes) ids.push(p.slice(COLLECTIONS_PREFIX.length, -1));
    pageToken = page.nextPageToken;
  } while (pageToken);
  return ids.sort();
}

/** Stores a version's manifest (create-only: versions are immutable), then points latest.json at it. */
export async function publishCollectionVersion(store: ObjectStore, m: CollectionManifest): Promise<string> {
  const bytes = collectionManifestBytes(m);
  const version = collectionVersionOf(bytes);
  const key = collectionManifestKey(m.collection, version);
  if (!(await store.stat(key))) await store.put(key, bytes, { contentType: "application/json" });
  const pointer: CollectionPointer = { version, published_at: new Date().toISOString() };
  await store.put(collectionLatestKey(m.collection), JSON.stringify(pointer), { contentType: "application/json" });
  return version;
}
