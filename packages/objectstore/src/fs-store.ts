/**
 * Filesystem ObjectStore: objects live at `<root>/<bucket>/<key>`; temp files and locks live in
 * `<root>/<bucket>/.objectstore/` (same filesystem, so publishing is a rename; never listed).
 *
 * - Atomic writes: the body is streamed into a temp file, fsynced, then renamed over the key.
 * - Etags are derived from (inode, mtime ns, size): free to compute, no sidecar to keep in step.
 *   Each write is a new inode, and we stamp its mtime with a strictly increasing µs clock, so an
 *   etag cannot come back after a rewrite even when the filesystem reuses the freed inode.
 * - Every publish/delete of a key holds a per-key lock: an in-process queue plus a lock file
 *   created with open(O_EXCL), which serialises writers across processes on the same root.
 *   The lock covers only the precondition check and the rename, never the upload.
 *   Stale locks (owner pid dead on this host, or older than LOCK_STALE_MS) are broken.
 * - A key and a "folder" of the same name cannot coexist here ("a" and "a/b"); S3 allows it.
 */
import { createHash, randomBytes } from "node:crypto";
import type { BigIntStats } from "node:fs";
import { link, lstat, mkdir, open, readFile, readdir, rename, rmdir, stat, unlink } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, join, resolve } from "node:path";
import { Readable } from "node:stream";
import { checkPageSize, checkRange, compareKeys, RESERVED_SEGMENT, validateKey, validatePrefix } from "./keys.js";
import {
  InvalidKeyError,
  ObjectNotFoundError,
  PreconditionFailedError,
  type Body,
  type ListOptions,
  type ListPage,
  type ListPageOptions,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
} from "./types.js";

/** A lock older than this is presumed abandoned even if its owner looks alive (or is on another host). */
const LOCK_STALE_MS = 30_000;
/** Give up waiting for a lock after this long. */
const LOCK_TIMEOUT_MS = 60_000;
/** init() removes temp files older than this (left by crashed writers). */
const TEMP_MAX_AGE_MS = 3_600_000;

export interface FsObjectStoreOptions {
  /** fsync each object before publishing it (crash-safe); default true. Tests may turn it off. */
  fsync?: boolean;
}

type Entry = { kind: "object"; info: ObjectInfo } | { kind: "prefix"; prefix: string };

export class FsObjectStore implements ObjectStore {
  readonly kind = "fs";
  readonly location: string;
  /** `<root>/<bucket>`: where the objects are. */
  readonly dir: string;
  private readonly tmpDir: string;
  private readonly lockDir: string;
  private readonly fsync: boolean;
  private readonly queues = new KeyedMutex();

  constructor(root: string, bucket: string, options: FsObjectStoreOptions = {}) {
    if (!bucket || bucket.includes("/") || bucket.includes("\\") || bucket.startsWith(".")) {
      throw new Error(`invalid bucket folder name ${JSON.stringify(bucket)}`);
    }
    this.dir = resolve(root, bucket);
    this.location = this.dir;
    this.tmpDir = join(this.dir, RESERVED_SEGMENT, "tmp");
    this.lockDir = join(this.dir, RESERVED_SEGMENT, "locks");
    this.fsync = options.fsync ?? true;
  }

  async init(): Promise<void> {
    await mkdir(this.tmpDir, { recursive: true });
    await mkdir(this.lockDir, { recursive: true });
    // Sweep temp files of writers that crashed; a live writer's file is younger than the cutoff.
    const cutoff = Date.now() - TEMP_MAX_AGE_MS;
    for (const name of await readdir(this.tmpDir)) {
      const path = join(this.tmpDir, name);
      const st = await stat(path).catch(() => undefined);
      if (st && st.mtimeMs < cutoff) await unlink(path).catch(() => undefined);
    }
  }

  async put(key: string, body: Body, options: PutOptions = {}): Promise<ObjectInfo> {
    validateKey(key);
    const conditional = options.ifNoneMatch !== undefined || options.ifMatch !== undefined;
    // Cheap early rejection so a doomed conditional put does not upload first; re-checked under the lock.
    if (conditional) {
      try {
        checkPrecondition(key, await this.stat(key), options);
      } catch (err) {
        if (body instanceof Readable) body.destroy(); // like every failed put: the source is done with
        throw err;
      }
    }

    const tmp = join(this.tmpDir, `${Date.now()}-${randomBytes(8).toString("hex")}`);
    let published = false;
    try {
      const st = await this.writeTemp(tmp, body);
      const info = toInfo(key, st);
      await this.withLock(key, async () => {
        if (conditional) checkPrecondition(key, await this.stat(key), options);
        await this.publish(key, tmp);
        published = true;
      });
      return info;
    } finally {
      if (!published) await unlink(tmp).catch(() => undefined);
    }
  }

  async get(key: string, range?: { start: number; end?: number }): Promise<Readable> {
    validateKey(key);
    if (range) checkRange(range);
    let fh: FileHandle;
    try {
      fh = await open(this.pathOf(key), "r");
    } catch (err) {
      throw notFound(err) ? new ObjectNotFoundError(key) : err;
    }
    // Opened before returning, so a concurrent replace/delete cannot affect this read.
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new ObjectNotFoundError(key);
      // Like S3: a range that starts past the end is an error; {start: 0} alone means "everything".
      if (range && (range.start > 0 || range.end !== undefined) && range.start >= st.size) {
        throw new RangeError(`range start ${range.start} is beyond the end of ${key} (${st.size} bytes)`);
      }
    } catch (err) {
      await fh.close();
      throw err;
    }
    return fh.createReadStream(range ? { start: range.start, ...(range.end !== undefined && { end: range.end }) } : {});
  }

  async getBuffer(key: string): Promise<Buffer> {
    validateKey(key);
    try {
      return await readFile(this.pathOf(key));
    } catch (err) {
      throw notFound(err) ? new ObjectNotFoundError(key) : err;
    }
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    validateKey(key);
    return this.statKey(key);
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    for await (const entry of this.walk(prefix, options.startAfter ?? "", false)) {
      if (entry.kind === "object") yield entry.info;
    }
  }

  async listPage(prefix: string, options: ListPageOptions = {}): Promise<ListPage> {
    validatePrefix(prefix);
    const pageSize = checkPageSize(options.pageSize);
    const after = options.pageToken === undefined ? "" : decodePageToken(options.pageToken);
    const page: ListPage = { objects: [], prefixes: [] };
    let last = "";
    let count = 0;
    // Walks one entry past the page to learn whether another page exists.
    for await (const entry of this.walk(prefix, after, options.delimiter === "/")) {
      if (count === pageSize) {
        page.nextPageToken = encodePageToken(last);
        break;
      }
      if (entry.kind === "object") {
        page.objects.push(entry.info);
        last = entry.info.key;
      } else {
        page.prefixes.push(entry.prefix);
        last = entry.prefix;
      }
      count++;
    }
    return page;
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    await this.withLock(key, async () => {
      try {
        await unlink(this.pathOf(key));
      } catch (err) {
        if (notFound(err) || code(err) === "EISDIR" || code(err) === "EPERM") return;
        throw err;
      }
      // Prune now-empty parent folders so they do not pile up; a concurrent put that needs one
      // again recreates it (see publish()).
      for (let dir = dirname(this.pathOf(key)); dir !== this.dir; dir = dirname(dir)) {
        if (!(await rmdir(dir).then(() => true, () => false))) break;
      }
    });
  }

  async close(): Promise<void> {}

  /** Absolute path of a (validated) key. */
  pathOf(key: string): string {
    return join(this.dir, key);
  }

  private async statKey(key: string): Promise<ObjectInfo | undefined> {
    try {
      const st = await lstat(this.pathOf(key), { bigint: true });
      return st.isFile() ? toInfo(key, st) : undefined;
    } catch (err) {
      if (notFound(err)) return undefined;
      throw err;
    }
  }

  /** Streams the body into a new temp file; returns its stats (which the rename keeps). */
  private async writeTemp(tmp: string, body: Body): Promise<BigIntStats> {
    let fh: FileHandle;
    try {
      fh = await open(tmp, "wx");
    } catch (err) {
      if (code(err) !== "ENOENT") throw err;
      await mkdir(this.tmpDir, { recursive: true }); // init() not called, or the folder was removed
      fh = await open(tmp, "wx");
    }
    try {
      if (body instanceof Readable) {
        // Pull one chunk at a time: memory stays at a chunk whatever the size. An error in the
        // source rejects here, and leaving the loop early destroys the source.
        for await (const chunk of body) await fh.write(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
      } else {
        await fh.writeFile(body);
      }
      const t = uniqueMtime();
      await fh.utimes(t, t);
      if (this.fsync) await fh.datasync();
      return await fh.stat({ bigint: true });
    } finally {
      await fh.close();
    }
  }

  /** Moves a finished temp file onto the key (caller holds the key's lock). */
  private async publish(key: string, tmp: string): Promise<void> {
    const dest = this.pathOf(key);
    // A concurrent delete may prune the parent folder between mkdir and rename: retry.
    for (let attempt = 0; ; attempt++) {
      try {
        await mkdir(dirname(dest), { recursive: true });
        await rename(tmp, dest);
        return;
      } catch (err) {
        const c = code(err);
        if (c === "ENOENT" && attempt < 5) continue;
        if (c === "ENOTDIR" || c === "EEXIST" || c === "EISDIR") {
          throw new InvalidKeyError(key, "clashes with an existing object or folder (the fs store cannot hold both 'a' and 'a/b')");
        }
        throw err;
      }
    }
  }

  private withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    // The in-process queue keeps this process's writers from polling the lock file against each other.
    return this.queues.run(key, async () => {
      const lockPath = join(this.lockDir, createHash("sha256").update(key).digest("hex").slice(0, 40));
      const release = await acquireFileLock(lockPath);
      try {
        return await fn();
      } finally {
        await release();
      }
    });
  }

  /**
   * Yields objects (and, with a delimiter, rolled-up prefixes) under `prefix` that sort after
   * `after`, in key order. Directory entries are sorted with a trailing "/" on folders, which makes
   * a depth-first walk produce exact key order ("a-b" < "a/b" < "a0").
   */
  private async *walk(prefix: string, after: string, delimiter: boolean): AsyncGenerator<Entry> {
    yield* this.walkDir(prefix.slice(0, prefix.lastIndexOf("/") + 1), prefix, after, delimiter);
  }

  private async *walkDir(dirKey: string, prefix: string, after: string, delimiter: boolean): AsyncGenerator<Entry> {
    let dirents;
    try {
      dirents = await readdir(join(this.dir, dirKey), { withFileTypes: true });
    } catch (err) {
      if (notFound(err)) return;
      throw err;
    }
    const entries = dirents
      .filter((d) => (d.isFile() || d.isDirectory()) && !(dirKey === "" && d.name === RESERVED_SEGMENT))
      .map((d) => ({ key: dirKey + d.name + (d.isDirectory() ? "/" : ""), isDir: d.isDirectory() }))
      .sort((a, b) => compareKeys(a.key, b.key));
    for (const { key, isDir } of entries) {
      if (!isDir) {
        if (!key.startsWith(prefix) || compareKeys(key, after) <= 0) continue;
        const info = await this.statKey(key); // undefined if deleted meanwhile
        if (info) yield { kind: "object", info };
      } else if (delimiter) {
        // We only ever read the prefix's own folder in this mode: every subfolder is one prefix.
        if (key.startsWith(prefix) && compareKeys(key, after) > 0 && (await this.hasObject(key))) {
          yield { kind: "prefix", prefix: key };
        }
      } else if (key.startsWith(prefix)) {
        // Skip a folder whose keys all sort before `after` (they all start with `key`).
        if (compareKeys(key, after) <= 0 && !after.startsWith(key)) continue;
        yield* this.walkDir(key, prefix, after, false);
      }
    }
  }

  /** Whether a folder holds any object (empty folders must not show up as prefixes). */
  private async hasObject(dirKey: string): Promise<boolean> {
    for await (const entry of this.walkDir(dirKey, dirKey, "", false)) {
      if (entry) return true;
    }
    return false;
  }
}

function checkPrecondition(key: string, current: ObjectInfo | undefined, options: PutOptions): void {
  if (options.ifNoneMatch === "*" && current) {
    throw new PreconditionFailedError(key, "object exists (ifNoneMatch: *)");
  }
  if (options.ifMatch !== undefined && current?.etag !== options.ifMatch) {
    throw new PreconditionFailedError(key, current ? `etag is ${current.etag}, not ${options.ifMatch}` : "object does not exist (ifMatch)");
  }
}

function toInfo(key: string, st: BigIntStats): ObjectInfo {
  return {
    key,
    size: Number(st.size),
    etag: `${st.ino.toString(36)}-${st.mtimeNs.toString(36)}-${st.size.toString(36)}`,
    lastModified: new Date(Number(st.mtimeMs)),
  };
}

let lastMtime = 0;
/**
 * Now, in seconds with µs resolution, strictly increasing within this process. The kernel's own
 * mtimes are tick-granular (~4 ms), too coarse to tell apart rewrites that reuse an inode.
 */
function uniqueMtime(): number {
  const now = Math.floor((performance.timeOrigin + performance.now()) * 1000) / 1e6;
  lastMtime = Math.max(now, lastMtime + 1e-6);
  return lastMtime;
}

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function notFound(err: unknown): boolean {
  const c = code(err);
  return c === "ENOENT" || c === "ENOTDIR" || c === "EISDIR";
}

function encodePageToken(after: string): string {
  return Buffer.from(JSON.stringify({ a: after })).toString("base64url");
}

function decodePageToken(token: string): string {
  try {
    const value: unknown = JSON.parse(Buffer.from(token, "base64url").toString());
    if (typeof value === "object" && value && typeof (value as { a?: unknown }).a === "string") {
      return (value as { a: string }).a;
    }
  } catch {
    // fall through
  }
  throw new Error(`invalid page token ${JSON.stringify(token)}`);
}

/** FIFO per key within this process. */
class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const tail = previous.then(() => new Promise<void>((resolve) => (release = resolve)));
    this.tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

const HOST = hostname();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Cross-process lock: create `path` with O_EXCL, holding "pid host token". Returns the release
 * function, which removes the file only if it is still ours (it may have been broken as stale).
 */
async function acquireFileLock(path: string): Promise<() => Promise<void>> {
  const token = `${process.pid} ${HOST} ${randomBytes(8).toString("hex")}`;
  const deadline = Date.now() + LOCK_TIMEOUT_MS;
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await open(path, "wx");
      try {
        await fh.writeFile(token);
      } finally {
        await fh.close();
      }
      return async () => {
        const content = await readFile(path, "utf8").catch(() => "");
        if (content === token) await unlink(path).catch(() => undefined);
      };
    } catch (err) {
      if (code(err) === "ENOENT") {
        await mkdir(dirname(path), { recursive: true });
        continue;
      }
      if (code(err) !== "EEXIST") throw err;
    }
    if (await breakIfStale(path)) continue;
    if (Date.now() > deadline) throw new Error(`timed out after ${LOCK_TIMEOUT_MS} ms waiting for lock ${path}`);
    // Backoff with jitter: 1, 2, 4 ... 50 ms.
    await sleep(Math.min(2 ** attempt, 50) * (0.5 + Math.random()));
  }
}

/** Removes the lock at `path` if its owner is gone; true when the caller should retry at once. */
async function breakIfStale(path: string): Promise<boolean> {
  let st;
  let content;
  try {
    st = await stat(path);
    content = await readFile(path, "utf8");
  } catch (err) {
    if (code(err) === "ENOENT") return true; // released meanwhile
    throw err;
  }
  const [pid, host] = content.split(" ");
  const ownerDead = host === HOST && pid !== undefined && !isAlive(Number(pid));
  // An empty file is a lock being written right now, unless it is old.
  if (!ownerDead && Date.now() - st.mtimeMs < LOCK_STALE_MS) return false;
  // Rename rather than unlink, then check we moved the file we judged: two breakers racing must
  // not remove a lock that a third process took in between.
  const grave = `${path}.stale-${randomBytes(6).toString("hex")}`;
  try {
    await rename(path, grave);
  } catch (err) {
    if (code(err) === "ENOENT") return true;
    throw err;
  }
  const moved = await stat(grave);
  if (moved.ino !== st.ino) {
    // We took a fresh lock: put it back (fails only if yet another process locked meanwhile).
    await link(grave, path).catch(() => undefined);
  }
  await unlink(grave).catch(() => undefined);
  return true;
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return code(err) === "EPERM"; // exists, owned by someone else
  }
}
