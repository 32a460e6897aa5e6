import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { FsObjectStore } from "./fs-store.js";
import { MinioObjectStore } from "./minio-store.js";
import { PreconditionFailedError, type Body, type ObjectInfo, type ObjectStore, type PutOptions } from "./types.js";

export * from "./types.js";
export { FsObjectStore, type FsObjectStoreOptions } from "./fs-store.js";
export { MinioObjectStore, type MinioObjectStoreConfig } from "./minio-store.js";
export { compareKeys, validateKey, validatePrefix } from "./keys.js";

export type ObjectStoreConfig =
  | { kind: "fs"; root: string; bucket: string }
  | {
      kind: "minio";
      /** e.g. "http://127.0.0.1:9000" */
      endpoint: string;
      accessKey: string;
      secretKey: string;
      bucket: string;
      region?: string;
    };

const configs = new WeakMap<ObjectStore, ObjectStoreConfig>();

/** Builds a store from config; call `init()` before use. */
export function createObjectStore(config: ObjectStoreConfig): ObjectStore {
  const store = config.kind === "fs" ? new FsObjectStore(config.root, config.bucket) : new MinioObjectStore(config);
  configs.set(store, { ...config });
  return store;
}

/** The config a store was built from (createObjectStore), so another process can open the same store. */
export function storeConfigOf(store: ObjectStore): ObjectStoreConfig | undefined {
  return configs.get(store);
}

/**
 * Points the store's bucket notifications (ObjectCreated, ObjectRemoved) at a target the server
 * has configured, e.g. `arn:minio:sqs::GLIMPSE:webhook`. A capability of the MinIO store only:
 * "unsupported" for another. Idempotent.
 */
export async function setBucketEventTarget(store: ObjectStore, arn: string): Promise<"set" | "unchanged" | "unsupported"> {
  return store instanceof MinioObjectStore ? store.setBucketEventTarget(arn) : "unsupported";
}

/** Stores `value` as pretty-printed JSON (manifests are read by people too). */
export function putJson(store: ObjectStore, key: string, value: unknown, options: PutOptions = {}): Promise<ObjectInfo> {
  const body = `${JSON.stringify(value, null, 2)}\n`;
  return store.put(key, body, { contentType: "application/json", ...options });
}

/** Reads a JSON object. Throws ObjectNotFoundError, or SyntaxError for invalid JSON. */
export async function getJson<T>(store: ObjectStore, key: string): Promise<T> {
  return JSON.parse((await store.getBuffer(key)).toString("utf8")) as T;
}

/**
 * Read-modify-write of a JSON object with compare-and-swap: `update` gets the current value
 * (undefined if missing) and returns the new one; on a concurrent change it is called again with
 * the newer value. Safe with any number of writers, in any number of processes.
 */
export async function updateJson<T>(
  store: ObjectStore,
  key: string,
  update: (current: T | undefined) => T | Promise<T>,
  { maxAttempts = 50 }: { maxAttempts?: number } = {},
): Promise<{ value: T; info: ObjectInfo }> {
  for (let attempt = 1; ; attempt++) {
    // stat before get: the content we read is at least as new as the etag we condition on, so a
    // race can only make the put fail (and retry), never overwrite a change we did not see.
    const current = await store.stat(key);
    let value: T | undefined;
    if (current) {
      try {
        value = await getJson<T>(store, key);
      } catch (err) {
        if (attempt < maxAttempts && (err as Error).name === "ObjectNotFoundError") continue; // deleted meanwhile
        throw err;
      }
    }
    const next = await update(value);
    try {
      const info = await putJson(store, key, next, current ? { ifMatch: current.etag } : { ifNoneMatch: "*" });
      return { value: next, info };
    } catch (err) {
      if (!(err instanceof PreconditionFailedError) || attempt >= maxAttempts) throw err;
      // Back off a little so many writers on one key do not spin in lockstep.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(2 ** attempt, 100)));
    }
  }
}

/** Hex SHA-256 of a body, streaming (a Readable is consumed). */
export async function sha256Hex(body: Body): Promise<string> {
  const hash = createHash("sha256");
  if (body instanceof Readable) {
    for await (const chunk of body) hash.update(chunk as Buffer);
  } else {
    hash.update(body);
  }
  return hash.digest("hex");
}
