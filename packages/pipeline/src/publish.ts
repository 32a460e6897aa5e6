import { PreconditionFailedError, type ObjectStore } from "@glimpse/objectstore";
import { latestKey, manifestKey, readLatest, type LatestPointer, type LatestState } from "./layout.js";
import { PublishConflictError } from "./util/errors.js";

export { readLatest, type LatestState } from "./layout.js";

/** Writes a version's manifest once: manifests are immutable, and a concurrent identical publish is fine. */
export async function putManifest(store: ObjectStore, dataset: string, version: string, bytes: Buffer): Promise<string> {
  const key = manifestKey(dataset, version);
  if (await store.stat(key)) return key;
  try {
    await store.put(key, bytes, { contentType: "application/json", ifNoneMatch: "*" });
  } catch (err) {
    if (!(err instanceof PreconditionFailedError)) throw err;
  }
  return key;
}

export interface MoveResult {
  /** False when the pointer already named the version. */
  moved: boolean;
  previous?: LatestPointer;
  /** When the version became latest (now, or earlier when it already was). */
  publishedAt: string;
}

/**
 * Points `latest.json` at a version whose manifest is in the store — the last write of a
 * publish, by compare-and-swap: a concurrent publisher makes this throw PublishConflictError
 * instead of one of them silently winning.
 */
export async function moveLatest(store: ObjectStore, dataset: string, version: string, current?: LatestState): Promise<MoveResult> {
  const cur = current ?? (await readLatest(store, dataset));
  const previous = cur?.pointer;
  if (previous?.version === version) return { moved: false, previous, publishedAt: previous.published_at };
  const key = latestKey(dataset);
  const pointer: LatestPointer = { version, manifest: manifestKey(dataset, version), published_at: new Date().toISOString() };
  try {
    await store.put(key, `${JSON.stringify(pointer, null, 2)}\n`, { contentType: "application/json", ...(cur ? { ifMatch: cur.etag } : { ifNoneMatch: "*" as const }) });
  } catch (err) {
    if (err instanceof PreconditionFailedError) {
      throw new PublishConflictError(`${key} changed while version ${version} was being published (another publisher?); the other version stays latest — publish again to make this one latest`);
    }
    throw err;
  }
  return { moved: true, ...(previous ? { previous } : {}), publishedAt: pointer.published_at };
}
