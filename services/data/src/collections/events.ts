/**
 * The object store's bucket notifications (MinIO's webhook target → ReceiveStorageEvents): which
 * watched bucket collection an event concerns, and whether it still says anything the catalog
 * does not already know. An event that does starts that collection's (debounced) sync, which
 * lists the prefix as any sync does: the event only says *when* to look, never *what* the
 * collection holds, so a lost, repeated or reordered event costs at most a sync that changes
 * nothing, and the periodic re-list catches what no event announced.
 */
import type { data } from "@glimpse/api";
import { isGlimpseKey, type CatalogEntry, type CollectionRecord } from "@glimpse/layout";

export type StorageEventKind = "created" | "removed" | "other";

/** One record of a notification, decoded. */
export interface StorageEvent {
  bucket: string;
  /** The object key, URL-decoded; undefined when it cannot be decoded. */
  key: string | undefined;
  kind: StorageEventKind;
  /** ms since the epoch; undefined when the record has no readable time. */
  time: number | undefined;
  etag: string;
  size: number;
}

/**
 * An S3 event's object key as MinIO sends it: query-escaped (Go's url.QueryEscape: a space is
 * "+", a "+" is "%2B", "/" is "%2F"). Undefined for a malformed escape.
 */
export function decodeEventKey(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw.replace(/\+/g, " "));
  } catch {
    return undefined;
  }
}

function kindOf(eventName: string): StorageEventKind {
  const name = eventName.replace(/^s3:/, "");
  if (name.startsWith("ObjectCreated:")) return "created";
  if (name.startsWith("ObjectRemoved:")) return "removed";
  return "other";
}

/** The records of a notification, decoded. */
export function storageEvents(req: data.ReceiveStorageEventsRequest): StorageEvent[] {
  return req.records.map((r) => {
    const time = r.eventTime ? Date.parse(r.eventTime) : NaN;
    return {
      bucket: r.s3?.bucket?.name ?? "",
      key: decodeEventKey(r.s3?.object?.key ?? ""),
      kind: kindOf(r.eventName || req.eventName),
      time: Number.isFinite(time) ? time : undefined,
      etag: (r.s3?.object?.etag ?? "").replace(/^"(.*)"$/, "$1"),
      size: Number(r.s3?.object?.size ?? 0n),
    };
  });
}

/**
 * Does a bucket collection watch this key of the configured store? A prefix of the configured
 * store (not another endpoint or bucket), watched, the key under its prefix and not a "folder"
 * marker. Keys Glimpse writes (collections/, datasets/, models/) are never a collection's photo
 * (a whole-bucket collection would otherwise sync on every sync's own catalog write).
 */
export function watchesKey(record: CollectionRecord, key: string): boolean {
  const s = record.source;
  if (!record.watch || s.kind !== "bucket" || s.endpoint || s.bucket) return false;
  if (key === "" || key.endsWith("/") || isGlimpseKey(key)) return false;
  return key.startsWith(s.prefix);
}

/** Why an event concerning a watched collection changes nothing. */
export type DropReason = "stale" | "already-applied" | "nothing-to-remove";

/**
 * Whether an event for a watched key still tells the catalog something. `entry` is the catalog's
 * record of the key; `settled` is false while a sync of the collection runs or is about to (its
 * listing may predate the event, so the catalog cannot yet say the event is moot).
 *
 * - older than the catalog's record of the key (its mtime, the object's Last-Modified): stale;
 * - ObjectCreated with the ETag and size the catalog holds: already applied;
 * - ObjectRemoved of a key the catalog does not hold (and no sync under way): nothing to remove.
 */
export function dropReason(event: StorageEvent, entry: CatalogEntry | undefined, settled: boolean): DropReason | undefined {
  if (entry && event.time !== undefined && event.time < entry.mtime) return "stale";
  if (event.kind === "created" && entry && event.etag !== "" && entry.etag === event.etag && entry.size === event.size) return "already-applied";
  if (event.kind === "removed" && !entry && settled) return "nothing-to-remove";
  return undefined;
}
