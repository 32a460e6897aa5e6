/**
 * The ingest of a sync's files: fetch → decode and validate → normalise → thumbnail → sha256.
 * A file whose bytes are already known (a rename, a copy) re-uses that photo's normalised copy
 * and metadata without decoding it. Normalised copies and thumbnails are content-addressed, so
 * two workers storing the same photo store the same object.
 *
 * `ingestShard` is one worker's slice of a plan (the `collection-ingest` step of the Argo
 * workflow): its entries are saved as it goes, so a retried worker resumes where it stopped.
 */
import { PreconditionFailedError, type ObjectStore } from "@glimpse/objectstore";
import {
  collectionBlobKey,
  readCatalog,
  readSyncPlan,
  readSyncShard,
  sha256Hex,
  shardSlice,
  syncShardKey,
  SYNC_SHARD_SCHEMA,
  thumbnailKey,
  type CatalogEntry,
  type PlannedFile,
  type SyncShard,
} from "@glimpse/layout";
import { ingestPhoto, type IngestedPhoto } from "../photos.js";
import type { SourceAllowList } from "../sources.js";
import { sourceReader } from "./sources.js";

export interface IngestContext {
  store: ObjectStore;
  collection: string;
  read: (path: string) => Promise<Buffer>;
  /** Photos known by the sha256 of their bytes (the catalog's, then each one ingested). */
  known: Map<string, CatalogEntry>;
  signal?: AbortSignal | undefined;
  /** Files read and decoded at once (default 4: decoding is libvips' threads, reading is I/O). */
  concurrency?: number | undefined;
  /** After each file, in completion order. */
  onEntry?: ((entry: CatalogEntry) => Promise<void> | void) | undefined;
}

export interface IngestCounts {
  read: number;
  decoded: number;
}

/** Photos already ingested, by the sha256 of their bytes. */
export function knownPhotos(entries: Iterable<CatalogEntry>): Map<string, CatalogEntry> {
  const known = new Map<string, CatalogEntry>();
  for (const e of entries) if (e.state === "ok" && e.sha256) known.set(e.sha256, e);
  return known;
}

/** Content-addressed: a key already there holds these bytes (one request, not a stat and a put). */
async function putOnce(store: ObjectStore, key: string, bytes: Buffer): Promise<void> {
  try {
    await store.put(key, bytes, { contentType: "image/jpeg", ifNoneMatch: "*" });
  } catch (err) {
    if (!(err instanceof PreconditionFailedError)) throw err;
  }
}

/** Ingests the files; never throws for a bad file (it becomes a skipped entry with its reason). */
export async function ingestFiles(files: PlannedFile[], ctx: IngestContext): Promise<IngestCounts> {
  const counts: IngestCounts = { read: 0, decoded: 0 };
  let cursor = 0;
  await Promise.all(
    Array.from({ length: Math.min(ctx.concurrency ?? 4, files.length) }, async () => {
      while (cursor < files.length) {
        const f = files[cursor++]!;
        ctx.signal?.throwIfAborted();
        await ctx.onEntry?.(await ingestFile(f, ctx, counts));
      }
    }),
  );
  return counts;
}

async function ingestFile(f: PlannedFile, ctx: IngestContext, counts: IngestCounts): Promise<CatalogEntry> {
  const base = { path: f.path, size: f.size, mtime: f.mtime, ...(f.etag !== undefined ? { etag: f.etag } : {}) };
  if (f.skip) return { ...base, state: "skipped", reason: f.skip.reason, message: f.skip.message };
  let bytes: Buffer;
  try {
    bytes = await ctx.read(f.path);
  } catch (err) {
    return { ...base, state: "skipped", reason: "FETCH_FAILED", message: (err as Error).message };
  }
  counts.read++;
  const sha256 = sha256Hex(bytes);
  const known = ctx.known.get(sha256);
  if (known) return { ...known, ...base, size: bytes.length, sha256 };
  const photo = await ingestPhoto(bytes, { sha256 });
  if (!photo.ok) return { ...base, size: bytes.length, sha256, state: "skipped", reason: photo.reason, message: photo.message };
  counts.decoded++;
  const entry = await storeIngested(ctx.store, ctx.collection, photo, { ...base, size: bytes.length });
  ctx.known.set(sha256, entry);
  return entry;
}

/**
 * Stores an ingested photo's normalised copy and thumbnail (content-addressed) and says what the
 * catalog records of it; a sync given this entry as known does not decode the photo again.
 */
export async function storeIngested(store: ObjectStore, collection: string, photo: IngestedPhoto, base: Pick<CatalogEntry, "path" | "size" | "mtime" | "etag">): Promise<CatalogEntry> {
  const normalizedSha = sha256Hex(photo.normalized);
  const image = { key: collectionBlobKey(collection, normalizedSha), sha256: normalizedSha, size: photo.normalized.length };
  await putOnce(store, image.key, photo.normalized);
  await putOnce(store, thumbnailKey(collection, photo.sha256), photo.thumbnail);
  return {
    ...base,
    sha256: photo.sha256,
    state: "ok",
    width: photo.width,
    height: photo.height,
    taken_time: (photo.takenTime ?? new Date(base.mtime)).toISOString(),
    camera_model: photo.cameraModel,
    image,
  };
}

export interface ShardOptions {
  store: ObjectStore;
  allow: SourceAllowList;
  collection: string;
  sync: string;
  shard: number;
  secretsDir?: string | undefined;
  signal?: AbortSignal | undefined;
  concurrency?: number | undefined;
  /** Entries saved this often (a retried worker redoes at most this many). */
  saveEvery?: number | undefined;
  onProgress?: ((done: number, total: number) => void) | undefined;
}

/** Thrown for a plan or shard that is not there or not this one: not worth a retry. */
export class SyncPlanError extends Error {
  override readonly name = "SyncPlanError";
}

/** One worker's slice of a plan: resumes from its saved entries, saves as it goes, ends `complete`. */
export async function ingestShard(opts: ShardOptions): Promise<SyncShard> {
  const { store, collection, sync, shard } = opts;
  const plan = await readSyncPlan(store, collection, sync);
  if (!plan) throw new SyncPlanError(`collection ${collection} has no sync ${sync}`);
  if (!Number.isInteger(shard) || shard < 0 || shard >= plan.shards) throw new SyncPlanError(`sync ${sync} has shards 0..${plan.shards - 1}, not ${shard}`);
  const { first, count } = shardSlice(plan.todo.length, plan.shards, shard);
  const mine = plan.todo.slice(first, first + count);
  const saved = await readSyncShard(store, collection, sync, shard);
  const doc: SyncShard = saved ?? { schema: SYNC_SHARD_SCHEMA, sync, shard, complete: false, read: 0, decoded: 0, entries: [] };
  if (doc.complete) return doc;
  const done = new Set(doc.entries.map((e) => e.path));
  const rest = mine.filter((f) => !done.has(f.path));
  const catalog = await readCatalog(store, collection);
  const known = knownPhotos([...Object.values(catalog.entries), ...doc.entries]);
  const save = () => store.put(syncShardKey(collection, sync, shard), JSON.stringify(doc), { contentType: "application/json" });
  const every = opts.saveEvery ?? 64;
  let unsaved = 0;
  opts.onProgress?.(doc.entries.length, mine.length);
  const counts = await ingestFiles(rest, {
    store,
    collection,
    read: sourceReader(plan.source, { store, allow: opts.allow, collection, secretsDir: opts.secretsDir }),
    known,
    signal: opts.signal,
    concurrency: opts.concurrency,
    onEntry: async (entry) => {
      doc.entries.push(entry);
      opts.onProgress?.(doc.entries.length, mine.length);
      if (++unsaved >= every) {
        unsaved = 0;
        await save();
      }
    },
  });
  doc.read += counts.read;
  doc.decoded += counts.decoded;
  doc.complete = true;
  await save();
  return doc;
}
