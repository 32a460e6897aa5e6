/**
 * One sync of a collection: list the source → diff against the catalog → ingest what is new or
 * changed (fetch, decode and validate, normalise, thumbnail, sha256) → publish a new version.
 *
 * The catalog (one record per source file) is the source of truth, so a sync reads only files
 * whose ETag, or size and mtime, changed; a changed file whose bytes are already known (a
 * rename, a copy) re-uses that photo's normalised copy and metadata without decoding it. The
 * embedding happens after the publish, in Ranking's index build, which re-uses the previous
 * version's embeddings by content: a sync that changed nothing publishes the same version and
 * nothing is embedded.
 */
import { PreconditionFailedError, type ObjectStore } from "@glimpse/objectstore";
import {
  CATALOG_SCHEMA,
  catalogKey,
  collectionBlobKey,
  COLLECTION_MANIFEST_SCHEMA,
  publishCollectionVersion,
  readCatalog,
  readCollectionVersion,
  sha256Hex,
  thumbnailKey,
  type Catalog,
  type CatalogEntry,
  type CollectionManifest,
  type CollectionPhoto,
  type CollectionRecord,
} from "@glimpse/layout";
import { ingestPhoto, IMAGE_FORMAT, type SourceAllowList } from "@glimpse/pipeline";
import { listSource, type SourceFile } from "./sources.js";

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
}

export interface SyncOptions {
  store: ObjectStore;
  allow: SourceAllowList;
  record: CollectionRecord;
  onProgress?: (p: SyncProgress) => void;
  signal?: AbortSignal;
  /** GLIMPSE_SOURCE_SECRETS_DIR (a bucket on another endpoint). */
  secretsDir?: string | undefined;
  /** Files read and decoded at once (default 4: decoding is libvips' threads, reading is I/O). */
  concurrency?: number;
}

/** Content-addressed: a key already there holds these bytes (one request, not a stat and a put). */
async function putOnce(store: ObjectStore, key: string, bytes: Buffer): Promise<void> {
  try {
    await store.put(key, bytes, { contentType: "image/jpeg", ifNoneMatch: "*" });
  } catch (err) {
    if (!(err instanceof PreconditionFailedError)) throw err;
  }
}

/** The catalog is saved this often during a long ingest, so an interrupted sync resumes where it was. */
const CATALOG_SAVE_EVERY = 256;

function unchanged(entry: CatalogEntry | undefined, f: SourceFile): entry is CatalogEntry {
  if (!entry) return false;
  if (f.etag !== undefined) return entry.etag === f.etag && entry.size === f.size;
  return entry.size === f.size && entry.mtime === f.mtime;
}

export async function syncCollection(opts: SyncOptions): Promise<SyncResult> {
  const { store, record } = opts;
  const id = record.id;
  const startedAt = Date.now();
  const report = (p: Omit<SyncProgress, "startedAt">) => opts.onProgress?.({ ...p, startedAt });
  report({ stage: "list", done: 0, total: 0, changed: 0 });

  const catalog = await readCatalog(store, id);
  const previous = await readCollectionVersion(store, id);
  const files: SourceFile[] = [];
  for await (const f of listSource(record.source, { store, allow: opts.allow, collection: id, secretsDir: opts.secretsDir })) {
    opts.signal?.throwIfAborted();
    files.push(f);
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const listed = new Set(files.map((f) => f.path));
  const removed = Object.keys(catalog.entries).filter((p) => !listed.has(p));
  const todo = files.filter((f) => !unchanged(catalog.entries[f.path], f));
  const todoSet = new Set(todo);

  // What is known by content: a changed file with these bytes needs no decoding.
  const bySha = new Map<string, CatalogEntry>();
  for (const e of Object.values(catalog.entries)) if (e.state === "ok" && e.sha256) bySha.set(e.sha256, e);

  const next: Catalog = { schema: CATALOG_SCHEMA, entries: {} };
  for (const f of files) if (!todoSet.has(f)) next.entries[f.path] = catalog.entries[f.path]!;
  let done = 0;
  let read = 0;
  let decoded = 0;
  report({ stage: "ingest", done, total: todo.length, changed: todo.length });
  const save = () => store.put(catalogKey(id), JSON.stringify({ ...next, entries: { ...catalog.entries, ...next.entries } }), { contentType: "application/json" });

  let cursor = 0;
  await Promise.all(
    Array.from({ length: Math.min(opts.concurrency ?? 4, todo.length) }, async () => {
      while (cursor < todo.length) {
        const f = todo[cursor++]!;
        opts.signal?.throwIfAborted();
        next.entries[f.path] = await ingestFile(f);
        done++;
        report({ stage: "ingest", done, total: todo.length, changed: todo.length });
        if (done % CATALOG_SAVE_EVERY === 0) await save();
      }
    }),
  );

  async function ingestFile(f: SourceFile): Promise<CatalogEntry> {
    const base = { path: f.path, size: f.size, mtime: f.mtime, ...(f.etag !== undefined ? { etag: f.etag } : {}) };
    if (f.skip) return { ...base, state: "skipped", reason: f.skip.reason, message: f.skip.message };
    let bytes: Buffer;
    try {
      bytes = await f.read();
    } catch (err) {
      return { ...base, state: "skipped", reason: "FETCH_FAILED", message: (err as Error).message };
    }
    read++;
    const sha256 = sha256Hex(bytes);
    const known = bySha.get(sha256);
    if (known) return { ...known, ...base, size: bytes.length, sha256 };
    const photo = await ingestPhoto(bytes, { sha256 });
    if (!photo.ok) return { ...base, size: bytes.length, sha256, state: "skipped", reason: photo.reason, message: photo.message };
    decoded++;
    const normalizedSha = sha256Hex(photo.normalized);
    const image = { key: collectionBlobKey(id, normalizedSha), sha256: normalizedSha, size: photo.normalized.length };
    await putOnce(store, image.key, photo.normalized);
    await putOnce(store, thumbnailKey(id, sha256), photo.thumbnail);
    const entry: CatalogEntry = {
      ...base,
      size: bytes.length,
      sha256,
      state: "ok",
      width: photo.width,
      height: photo.height,
      taken_time: (photo.takenTime ?? new Date(f.mtime)).toISOString(),
      camera_model: photo.cameraModel,
      image,
    };
    bySha.set(sha256, entry);
    return entry;
  }

  report({ stage: "publish", done: 0, total: 1, changed: todo.length });
  const manifest = manifestOf(id, next, previous?.version ?? "");
  // Nothing changed: the same photos and skips as the published version, which stays.
  const same = previous !== undefined && JSON.stringify({ ...previous.manifest, previous_version: "" }) === JSON.stringify({ ...manifest, previous_version: "" });
  await store.put(catalogKey(id), JSON.stringify(next), { contentType: "application/json" });
  const version = same ? previous!.version : await publishCollectionVersion(store, manifest);
  report({ stage: "publish", done: 1, total: 1, changed: todo.length });
  return { version, changed: !same, previousVersion: previous?.version ?? "", read, decoded, removed: removed.length, manifest: same ? previous!.manifest : manifest };
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
