import type { Readable } from "node:stream";

/** What the store knows about one object. */
export interface ObjectInfo {
  key: string;
  size: number;
  /** Opaque version tag; changes whenever the object's content changes. Used for conditional writes. */
  etag: string;
  lastModified: Date;
}

export interface PutOptions {
  contentType?: string;
  /** "*" = create only: fail with PreconditionFailedError if the key exists. */
  ifNoneMatch?: "*";
  /** Compare-and-swap: fail with PreconditionFailedError unless the current etag equals this. */
  ifMatch?: string;
}

export interface ListOptions {
  /** Start listing after this key (exclusive); for resuming. */
  startAfter?: string;
}

export interface ListPageOptions {
  /** 1..1000, default 1000. */
  pageSize?: number;
  /** From a previous page's nextPageToken. */
  pageToken?: string;
  /** With "/", keys below the next "/" after the prefix are rolled up into `prefixes`. */
  delimiter?: "/";
}

export interface ListPage {
  objects: ObjectInfo[];
  /** Common prefixes (ending in "/") when a delimiter was given. */
  prefixes: string[];
  nextPageToken?: string;
}

export type Body = Buffer | Uint8Array | string | Readable;

/**
 * A flat key → bytes store: MinIO/S3 in a cluster, a folder on the embedded default.
 * Keys are "/"-separated relative paths without "..", "." or empty segments.
 * Writes are atomic: a reader sees the old object or the whole new one, never a part.
 */
export interface ObjectStore {
  /** "fs" or "minio". */
  readonly kind: string;
  /** Where it stores, for logs: a folder or endpoint/bucket. */
  readonly location: string;
  /** Creates the bucket/folder if needed. Idempotent. */
  init(): Promise<void>;
  /**
   * Stores an object; streams are never fully buffered in memory. A Readable body is consumed,
   * and destroyed if the put fails (a source error fails the put and leaves no object behind).
   * Throws PreconditionFailedError (ifNoneMatch/ifMatch), InvalidKeyError.
   */
  put(key: string, body: Body, options?: PutOptions): Promise<ObjectInfo>;
  /**
   * Streams an object (optionally a byte range, inclusive end; an end past the object is clamped).
   * Throws ObjectNotFoundError; RangeError for a malformed range or one starting past the end
   * (`{ start: 0 }` alone always means the whole object, even an empty one).
   */
  get(key: string, range?: { start: number; end?: number }): Promise<Readable>;
  /** Reads a whole object into memory. Throws ObjectNotFoundError. */
  getBuffer(key: string): Promise<Buffer>;
  /** undefined when the key does not exist. */
  stat(key: string): Promise<ObjectInfo | undefined>;
  /** Every object under a prefix, in key order, following pages as needed. */
  list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo>;
  /** One page of a listing. Throws RangeError for a bad pageSize, Error for a foreign pageToken. */
  listPage(prefix: string, options?: ListPageOptions): Promise<ListPage>;
  /** Removes an object; missing keys are not an error. */
  delete(key: string): Promise<void>;
  /** Releases connections/handles. */
  close(): Promise<void>;
}

export class ObjectNotFoundError extends Error {
  override readonly name = "ObjectNotFoundError";
  constructor(readonly key: string) {
    super(`object not found: ${key}`);
  }
}

export class PreconditionFailedError extends Error {
  override readonly name = "PreconditionFailedError";
  constructor(readonly key: string, detail: string) {
    super(`precondition failed for ${key}: ${detail}`);
  }
}

export class InvalidKeyError extends Error {
  override readonly name = "InvalidKeyError";
  constructor(readonly key: string, detail: string) {
    super(`invalid object key ${JSON.stringify(key)}: ${detail}`);
  }
}
