/**
 * Listing a collection's source: every file it holds, with what says whether it changed
 * (an object's ETag, or a file's size and mtime) and a way to read it. Listing reads no file.
 * `sourceReader` reads a listed path again later, in another process (an ingest worker).
 */
import { readFileSync } from "node:fs";
import { mkdtemp, opendir, readFile, realpath, rm, stat, lstat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative, sep } from "node:path";
import { pathToFileURL } from "node:url";
import { createObjectStore, storeConfigOf, type ObjectInfo, type ObjectStore, type ObjectStoreConfig } from "@glimpse/objectstore";
import { isGlimpseKey, uploadsPrefix, type CollectionSourceSpec, type SkipReason } from "@glimpse/layout";
import { downloadToFile } from "../download.js";
import type { SourceAllowList } from "../sources.js";

export interface SourceFile {
  /** A path under the folder, an object key, a URL or an upload's name. */
  path: string;
  size: number;
  /** ms since the epoch (0 when the source has no such notion). */
  mtime: number;
  etag?: string;
  /** Set when the file must be skipped without reading it. */
  skip?: { reason: SkipReason; message: string };
  read(): Promise<Buffer>;
}

/** The source is gone or unreadable: the sync fails and the previous version keeps serving. */
export class SourceUnavailableError extends Error {
  override readonly name = "SourceUnavailableError";
}

export interface SourceContext {
  store: ObjectStore;
  allow: SourceAllowList;
  /** The collection's id (uploads live under it). */
  collection: string;
  /** GLIMPSE_SOURCE_SECRETS_DIR: <dir>/<secret>/{access-key,secret-key}. */
  secretsDir?: string | undefined;
}

type BucketSpec = Extract<CollectionSourceSpec, { kind: "bucket" }>;

/** A Kubernetes object name: the only names a credentials_secret may take (no path can be made of one). */
const SECRET_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/**
 * Where a bucket source on another bucket or endpoint is, and the credentials it is read with: the
 * configured store's endpoint and keys unless the source names its own; a named Secret's keys are
 * files in the secrets folder (the chart mounts the Secrets it lists there). Throws SourceUnavailableError
 * saying what is missing.
 */
export function otherBucketConfig(spec: BucketSpec, store: ObjectStore, secretsDir: string | undefined): ObjectStoreConfig & { kind: "minio" } {
  const own = storeConfigOf(store);
  const mine = own?.kind === "minio" ? own : undefined;
  const endpoint = spec.endpoint || mine?.endpoint;
  if (!endpoint) throw new SourceUnavailableError("this Glimpse keeps its store in a folder: a bucket source needs its endpoint (https://…)");
  const bucket = spec.bucket || (spec.endpoint ? "" : mine!.bucket);
  if (!bucket) throw new SourceUnavailableError("a bucket source on another endpoint needs its bucket");
  let accessKey = mine?.accessKey ?? "";
  let secretKey = mine?.secretKey ?? "";
  if (spec.credentials_secret) {
    if (!SECRET_NAME.test(spec.credentials_secret)) throw new SourceUnavailableError(`credentials_secret ${JSON.stringify(spec.credentials_secret)} is not a Secret name`);
    if (!secretsDir) throw new SourceUnavailableError(`credentials_secret ${spec.credentials_secret}: no Secrets are mounted here (GLIMPSE_SOURCE_SECRETS_DIR; the chart's data.collections.sourceSecrets)`);
    const file = (k: string) => {
      try {
        return readFileSync(join(secretsDir, spec.credentials_secret!, k), "utf8").trim();
      } catch {
        throw new SourceUnavailableError(`credentials_secret ${spec.credentials_secret}: ${k} is not in ${join(secretsDir, spec.credentials_secret!)} (list the Secret in data.collections.sourceSecrets)`);
      }
    };
    accessKey = file("access-key");
    secretKey = file("secret-key");
  } else if (spec.endpoint && spec.endpoint !== mine?.endpoint) {
    throw new SourceUnavailableError("a bucket source on another endpoint needs its credentials_secret");
  }
  return { kind: "minio", endpoint, bucket, accessKey, secretKey, region: mine?.region ?? "us-east-1" };
}

/** Stores of other buckets, one per place and key (a client keeps its connections). */
const otherStores = new Map<string, ObjectStore>();
function otherBucket(spec: BucketSpec, ctx: SourceContext): ObjectStore {
  const cfg = otherBucketConfig(spec, ctx.store, ctx.secretsDir);
  const key = JSON.stringify(cfg);
  let store = otherStores.get(key);
  if (!store) otherStores.set(key, (store = createObjectStore(cfg)));
  return store;
}

export function listSource(spec: CollectionSourceSpec, ctx: SourceContext): AsyncIterable<SourceFile> {
  switch (spec.kind) {
    case "folder":
      return listFolder(spec.path); // its files are read by the paths the walk resolved
    case "bucket":
      if (spec.endpoint || spec.bucket) return listStore(otherBucket(spec, ctx), spec.prefix, (key) => key, sourceReader(spec, ctx));
      // what Glimpse keeps in the same bucket is never a user's photo (a collection of the whole bucket)
      return listStore(ctx.store, spec.prefix, (key) => key, sourceReader(spec, ctx), isGlimpseKey);
    case "uploads": {
      const prefix = uploadsPrefix(ctx.collection);
      return listStore(ctx.store, prefix, (key) => key.slice(prefix.length), sourceReader(spec, ctx));
    }
    case "urls":
      return listUrls(spec.urls, ctx.allow, sourceReader(spec, ctx));
  }
}

/** Reads a path the listing gave, in this process or another one: a file under the folder (never outside it), an object, a URL. */
export function sourceReader(spec: CollectionSourceSpec, ctx: SourceContext): (path: string) => Promise<Buffer> {
  switch (spec.kind) {
    case "folder":
      return async (path) => {
        const root = await realpath(spec.path);
        const target = await realpath(join(root, path));
        if (target !== root && !target.startsWith(root.endsWith(sep) ? root : root + sep)) throw new Error(`${path} is outside the folder`);
        return readFile(target);
      };
    case "bucket": {
      const store = spec.endpoint || spec.bucket ? otherBucket(spec, ctx) : ctx.store;
      return (path) => store.getBuffer(path);
    }
    case "uploads": {
      const prefix = uploadsPrefix(ctx.collection);
      return (path) => ctx.store.getBuffer(prefix + path);
    }
    case "urls":
      return async (url) => {
        const dir = await mkdtemp(join(tmpdir(), "glimpse-url-"));
        try {
          await downloadToFile(url, join(dir, "photo"), { allow: ctx.allow, retry: { attempts: 3 } });
          return await readFile(join(dir, "photo"));
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      };
  }
}

/** Files under a folder, recursively, in no particular order; hidden files and folders are left out. */
async function* listFolder(root: string): AsyncGenerator<SourceFile> {
  let realRoot: string;
  try {
    realRoot = await realpath(root);
    if (!(await stat(realRoot)).isDirectory()) throw new Error("not a folder");
  } catch (err) {
    throw new SourceUnavailableError(`folder ${root} cannot be read: ${(err as Error).message}`);
  }
  const inside = (p: string) => p === realRoot || p.startsWith(realRoot.endsWith(sep) ? realRoot : realRoot + sep);
  async function* walk(dir: string): AsyncGenerator<SourceFile> {
    for await (const d of await opendir(dir)) {
      if (d.name.startsWith(".")) continue;
      const full = join(dir, d.name);
      const path = relative(realRoot, full).split(sep).join("/");
      if (d.isDirectory()) {
        yield* walk(full);
        continue;
      }
      if (d.isSymbolicLink()) {
        const target = await realpath(full).catch(() => undefined);
        if (!target || !inside(target)) {
          const st = await lstat(full);
          yield { path, size: 0, mtime: st.mtimeMs, skip: { reason: "OUTSIDE_SOURCE", message: target ? `a symbolic link to ${target}, outside the folder` : "a broken symbolic link" }, read: () => Promise.reject(new Error("outside the source")) };
          continue;
        }
        const st = await stat(target);
        if (st.isDirectory()) continue; // a link to a folder inside is listed through the folder itself
        yield { path, size: st.size, mtime: st.mtimeMs, read: () => readFile(target) };
        continue;
      }
      if (!d.isFile()) continue;
      const st = await stat(full).catch(() => undefined);
      if (!st) continue; // deleted while listing
      yield { path, size: st.size, mtime: st.mtimeMs, read: () => readFile(full) };
    }
  }
  yield* walk(realRoot);
}

async function* listStore(
  store: ObjectStore,
  prefix: string,
  pathOf: (key: string) => string,
  read: (path: string) => Promise<Buffer>,
  own: (key: string) => boolean = () => false,
): AsyncGenerator<SourceFile> {
  let listing: AsyncIterator<ObjectInfo>;
  try {
    listing = store.list(prefix)[Symbol.asyncIterator]();
  } catch (err) {
    throw new SourceUnavailableError(`${store.location} cannot be listed: ${(err as Error).message}`);
  }
  for (;;) {
    let next: IteratorResult<ObjectInfo>;
    try {
      next = await listing.next();
    } catch (err) {
      throw new SourceUnavailableError(`${store.location} cannot be listed: ${(err as Error).message}`);
    }
    if (next.done) return;
    const o = next.value;
    if (o.key.endsWith("/") || own(o.key)) continue;
    const path = pathOf(o.key);
    yield { path, size: o.size, mtime: o.lastModified.getTime(), etag: o.etag, read: () => read(path) };
  }
}

/** URLs are not listed: each is one file, fetched (allow-list checked per connection) when new. */
async function* listUrls(urls: string[], allow: SourceAllowList, read: (url: string) => Promise<Buffer>): AsyncGenerator<SourceFile> {
  for (const url of urls) {
    let refused: string | undefined;
    try {
      await allow.check(url);
    } catch (err) {
      refused = (err as Error).message;
    }
    yield {
      path: url,
      size: 0,
      mtime: 0,
      // a URL's content is fetched once; a changed photo at the same URL needs a new sync of a new URL list
      etag: "url",
      ...(refused ? { skip: { reason: "FETCH_FAILED" as const, message: refused } } : {}),
      read: () => read(url),
    };
  }
}

export const folderUrl = (path: string): string => pathToFileURL(path.endsWith("/") ? path : `${path}/`).href;
