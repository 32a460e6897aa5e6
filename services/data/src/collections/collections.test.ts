import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { collection as pb, data } from "@glimpse/api";
import { readCatalog } from "@glimpse/layout";
import { createObjectStore, FsObjectStore } from "@glimpse/objectstore";
import { startMinio } from "@glimpse/objectstore/testing";
import { badPhotoCorpus } from "@glimpse/pipeline/testing";
import type { RunningServer } from "@glimpse/rpc";
import { TEST_WRITE_KEY, testConfig } from "@glimpse/runtime/testing";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { build } from "../server.js";

const auth = { headers: { authorization: `Bearer ${TEST_WRITE_KEY}` } };
const DEMO = resolve(import.meta.dirname, "../../../../demo/images");
const demoPhotos = readdirSync(DEMO).sort();

describe("collections through the Data service's API (real sockets, filesystem store)", () => {
  let server: RunningServer;
  let client: ReturnType<typeof createClient<typeof data.DataService>>;
  let root: string;
  let store: FsObjectStore;
  let cfg: ReturnType<typeof testConfig>;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "glimpse-collections-"));
    // files under root only: a folder elsewhere is refused
    cfg = testConfig({ GLIMPSE_SOURCE_ALLOWLIST: `${pathToFileURL(join(root, "allowed")).href},http://127.0.0.1`, GLIMPSE_COLLECTION_RELIST_MS: "60000", GLIMPSE_RANKING_URL: "http://127.0.0.1:9", GLIMPSE_SOURCE_SECRETS_DIR: join(root, "secrets") });
    mkdirSync(join(root, "allowed"));
    store = new FsObjectStore(join(cfg.dataDir, "store"), cfg.minioBucket);
    server = await build(cfg, { port: 0, store });
    // binary, as gRPC clients send: its encoding refuses what JSON lets through (a fractional Duration)
    client = createClient(data.DataService, createConnectTransport({ baseUrl: server.url, httpVersion: "2", useBinaryFormat: true }));
  });

  afterAll(async () => {
    await server?.close(100);
  });

  async function synced(name: string): Promise<pb.Collection> {
    let last: pb.Collection | undefined;
    for await (const m of client.watchCollection({ name, untilSynced: true })) last = m.collection;
    return last!;
  }

  async function until(name: string, ok: (c: pb.Collection) => boolean, what: string): Promise<pb.Collection> {
    // bounded by count, not by time: the watch or re-list must get there
    for (let i = 0; i < 200; i++) {
      const c = (await client.getCollection({ name })).collection!;
      if (ok(c) && c.state !== pb.Collection_State.SYNCING) return c;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`collection ${name} never reached: ${what}`);
  }

  it("ingests a folder: good photos indexed once, each bad file skipped with its reason, duplicates counted", async () => {
    const dir = join(root, "allowed", "holiday");
    mkdirSync(join(dir, "day1"), { recursive: true });
    for (const f of demoPhotos.slice(0, 6)) copyFileSync(join(DEMO, f), join(dir, "day1", f));
    copyFileSync(join(DEMO, demoPhotos[0]!), join(dir, "copy-of-first.jpg"));
    const bad = await badPhotoCorpus();
    for (const b of bad) writeFileSync(join(dir, b.name), b.bytes);
    writeFileSync(join(root, "secret.jpg"), readFileSync(join(DEMO, demoPhotos[7]!)));
    symlinkSync(join(root, "secret.jpg"), join(dir, "escape.jpg"));
    writeFileSync(join(dir, ".DS_Store"), "hidden");

    const created = await client.createCollection({ collectionId: "holiday", collection: { source: { kind: { case: "folder", value: { path: dir } } } } }, auth);
    expect(created.collection!.name).toBe("collections/holiday");
    const c = await synced("collections/holiday");
    expect(c.state).toBe(pb.Collection_State.READY);
    expect(c.version).toMatch(/^[0-9a-f]{16}$/);
    expect(c.counts!.indexed).toBe(6n);
    expect(c.counts!.exactDuplicates).toBe(1n);
    expect(c.counts!.found).toBe(BigInt(7 + bad.length + 1));
    expect(c.counts!.skipped).toBe(BigInt(bad.length + 1));

    const skipped = (await client.listPhotos({ parent: "collections/holiday", skipped: true })).skipped;
    const reasons = Object.fromEntries(skipped.map((s) => [s.path, s.reason]));
    for (const b of bad) expect(reasons[b.name], b.name).toBe(b.reason);
    expect(reasons["escape.jpg"]).toBe("OUTSIDE_SOURCE");

    const photos = (await client.listPhotos({ parent: "collections/holiday" })).photos;
    expect(photos).toHaveLength(6);
    // the same bytes twice: one photo, listed under its first path in path order
    const first = photos.find((p) => p.path === "copy-of-first.jpg")!;
    expect(first.duplicatePaths).toEqual([`day1/${demoPhotos[0]}`]);
    expect(first.width).toBe(224);
    expect(first.thumbnailUrl).toBe(`/v1/collections/holiday/photos/${first.photoId}/thumbnail`);
    const thumb = await client.getPhotoThumbnail({ name: first.name });
    const meta = await sharp(thumb.data).metadata();
    expect(meta.format).toBe("jpeg");
    expect(meta.exif).toBeUndefined();
  });

  it("re-syncs incrementally: only new or changed files are read; renames and deletions need no decoding; nothing changed publishes nothing", async () => {
    const name = "collections/holiday";
    const dir = join(root, "allowed", "holiday");
    const before = (await client.getCollection({ name })).collection!;
    const again = await client.syncCollection({ name }, auth);
    expect(again.collection!.name).toBe(name);
    const same = await synced(name);
    expect(same.version).toBe(before.version);

    renameSync(join(dir, "day1", demoPhotos[1]!), join(dir, "renamed.jpg"));
    unlinkSync(join(dir, "day1", demoPhotos[2]!));
    for (const f of demoPhotos.slice(10, 12)) copyFileSync(join(DEMO, f), join(dir, "day1", f));
    const catalogBefore = await readCatalog(store, "holiday");
    await client.syncCollection({ name }, auth);
    const after = await synced(name);
    expect(after.version).not.toBe(before.version);
    expect(after.counts!.indexed).toBe(7n); // 6 − 1 deleted + 2 new; the rename is the same photo
    const photos = (await client.listPhotos({ parent: name })).photos;
    expect(photos.map((p) => p.path)).toContain("renamed.jpg");
    expect(photos.map((p) => p.path)).not.toContain(`day1/${demoPhotos[2]}`);
    // the renamed file's record re-used the known photo's normalised copy
    const catalogAfter = await readCatalog(store, "holiday");
    const old = catalogBefore.entries[`day1/${demoPhotos[1]}`]!;
    expect(catalogAfter.entries["renamed.jpg"]!.image).toEqual(old.image);
  });

  it("a watched folder follows files added and deleted (inotify)", async () => {
    const dir = join(root, "allowed", "watched");
    mkdirSync(dir);
    for (const f of demoPhotos.slice(20, 24)) copyFileSync(join(DEMO, f), join(dir, f));
    await client.createCollection({ collectionId: "watched", collection: { watch: true, source: { kind: { case: "folder", value: { path: dir } } } } }, auth);
    const first = await synced("collections/watched");
    expect(first.counts!.indexed).toBe(4n);
    for (const f of demoPhotos.slice(30, 35)) copyFileSync(join(DEMO, f), join(dir, f));
    for (const f of demoPhotos.slice(20, 22)) unlinkSync(join(dir, f));
    const c = await until("collections/watched", (c) => c.counts!.indexed === 7n, "7 photos after +5 −2");
    expect(c.version).not.toBe(first.version);
  });

  it("uploads: add, read, thumbnail, delete; a bad upload is INVALID_ARGUMENT and stores nothing", async () => {
    await client.createCollection({ collectionId: "inbox", collection: { source: { kind: { case: "uploads", value: {} } } } }, auth);
    await synced("collections/inbox");
    const bytes = readFileSync(join(DEMO, demoPhotos[40]!));
    const { photo } = await client.createPhoto({ parent: "collections/inbox", image: bytes, filename: "mine.jpg" }, auth);
    expect(photo!.path).toBe("mine.jpg");
    expect((await client.getPhoto({ name: photo!.name })).photo!.sha256).toBe(photo!.sha256);
    const err = await client.createPhoto({ parent: "collections/inbox", image: Buffer.from("not an image at all") }, auth).catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((await client.getCollection({ name: "collections/inbox" })).collection!.counts!.indexed).toBe(1n);
    await client.deletePhoto({ name: photo!.name }, auth);
    expect((await client.getCollection({ name: "collections/inbox" })).collection!.counts!.indexed).toBe(0n);
    const gone = await client.getPhoto({ name: photo!.name }).catch((e: unknown) => ConnectError.from(e));
    expect((gone as ConnectError).code).toBe(Code.NotFound);
  });

  it("WatchCollection streams a sync's progress (done/total, rate, ETA) until it ends", async () => {
    const dir = join(root, "allowed", "many");
    mkdirSync(dir);
    for (const f of demoPhotos.slice(0, 150)) copyFileSync(join(DEMO, f), join(dir, f));
    await client.createCollection({ collectionId: "many", collection: { source: { kind: { case: "folder", value: { path: dir } } } } }, auth);
    const seen: pb.Collection[] = [];
    for await (const m of client.watchCollection({ name: "collections/many", untilSynced: true })) seen.push(m.collection!);
    const progress = seen.filter((c) => c.sync?.stage === pb.SyncProgress_Stage.INGEST && c.sync.total === 150n);
    expect(progress.length, seen.map((c) => `${c.sync?.stage}:${c.sync?.done}/${c.sync?.total}`).join(" ")).toBeGreaterThan(0);
    expect(progress.some((c) => c.sync!.eta !== undefined && c.sync!.photosPerSecond > 0)).toBe(true);
    expect(seen.at(-1)!.state).toBe(pb.Collection_State.READY);
    expect(seen.at(-1)!.counts!.indexed).toBe(150n);
  });

  it("a list of URLs: each fetched once (the allow-list checked), one that fails is skipped with FETCH_FAILED", async () => {
    const files = demoPhotos.slice(70, 73);
    const server = createServer((req, res) => {
      const f = files.find((x) => req.url === `/${x}`);
      if (!f) return void res.writeHead(404).end("no such photo");
      res.writeHead(200, { "content-type": "image/jpeg" }).end(readFileSync(join(DEMO, f)));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const urls = [...files.map((f) => `${base}/${f}`), `${base}/missing.jpg`];
      await client.createCollection({ collectionId: "linked", collection: { source: { kind: { case: "urls", value: { urls } } } } }, auth);
      const c = await synced("collections/linked");
      expect(c.counts!.indexed).toBe(3n);
      expect(c.counts!.skippedByReason).toEqual({ FETCH_FAILED: 1n });
      const refused = await client.createCollection({ collectionId: "elsewhere", collection: { source: { kind: { case: "urls", value: { urls: ["http://10.0.0.1/a.jpg"] } } } } }, auth).catch((e: unknown) => ConnectError.from(e));
      expect((refused as ConnectError).code).toBe(Code.PermissionDenied);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it("a bucket prefix of the configured store: objects added and removed are followed by a re-sync", async () => {
    for (const f of demoPhotos.slice(60, 63)) await store.put(`catalog/2026/${f}`, readFileSync(join(DEMO, f)));
    await store.put("catalog/2025/old.jpg", readFileSync(join(DEMO, demoPhotos[64]!)));
    await client.createCollection({ collectionId: "shop", collection: { source: { kind: { case: "bucket", value: { prefix: "catalog/2026/" } } } } }, auth);
    const first = await synced("collections/shop");
    expect(first.counts!.indexed).toBe(3n);
    expect((await client.listPhotos({ parent: "collections/shop" })).photos.map((p) => p.path).sort()).toEqual(demoPhotos.slice(60, 63).map((f) => `catalog/2026/${f}`));
    await store.delete(`catalog/2026/${demoPhotos[60]}`);
    await store.put(`catalog/2026/new.jpg`, readFileSync(join(DEMO, demoPhotos[65]!)));
    await client.syncCollection({ name: "collections/shop" }, auth);
    const next = await synced("collections/shop");
    expect(next.counts!.indexed).toBe(3n);
    expect(next.version).not.toBe(first.version);
  });

  it("a bucket on another S3 endpoint, read with the keys of the Secret it names; what is missing is a clear error", async () => {
    const other = await startMinio();
    try {
      const bucket = createObjectStore({ kind: "minio", endpoint: other.endpoint, accessKey: other.accessKey, secretKey: other.secretKey, bucket: "elsewhere" });
      await bucket.init();
      for (const f of demoPhotos.slice(80, 83)) await bucket.put(`trip/${f}`, readFileSync(join(DEMO, f)));
      await bucket.put("other/skip.jpg", readFileSync(join(DEMO, demoPhotos[84]!)));
      // as Kubernetes mounts a Secret: one file per key
      mkdirSync(join(root, "secrets", "other-s3"), { recursive: true });
      writeFileSync(join(root, "secrets", "other-s3", "access-key"), `${other.accessKey}\n`);
      writeFileSync(join(root, "secrets", "other-s3", "secret-key"), other.secretKey);
      mkdirSync(join(root, "secrets", "wrong-keys"), { recursive: true });
      writeFileSync(join(root, "secrets", "wrong-keys", "access-key"), "nobody");
      writeFileSync(join(root, "secrets", "wrong-keys", "secret-key"), "not-the-secret");
      const source = (b: Record<string, string>) => ({ source: { kind: { case: "bucket" as const, value: { prefix: "trip/", endpoint: other.endpoint, bucket: "elsewhere", ...b } } } });

      await client.createCollection({ collectionId: "remote", collection: source({ credentialsSecret: "other-s3" }) }, auth);
      const c = await synced("collections/remote");
      expect(c.counts!.indexed).toBe(3n);
      expect((await client.listPhotos({ parent: "collections/remote" })).photos.map((p) => p.path).sort()).toEqual(demoPhotos.slice(80, 83).map((f) => `trip/${f}`));

      const code = (p: Promise<unknown>) => p.then(() => Code.Unknown as Code, (e: unknown) => ConnectError.from(e).code);
      expect(await code(client.createCollection({ collectionId: "no-keys", collection: source({}) }, auth))).toBe(Code.InvalidArgument);
      expect(await code(client.createCollection({ collectionId: "no-secret", collection: source({ credentialsSecret: "not-mounted" }) }, auth))).toBe(Code.InvalidArgument);
      expect(await code(client.createCollection({ collectionId: "bad-name", collection: source({ credentialsSecret: "../../etc" }) }, auth))).toBe(Code.InvalidArgument);
      expect(await code(client.createCollection({ collectionId: "private", collection: { source: { kind: { case: "bucket", value: { endpoint: "http://10.1.2.3:9000", bucket: "b", credentialsSecret: "other-s3" } } } } }, auth))).toBe(Code.PermissionDenied);
      await client.createCollection({ collectionId: "refused", collection: source({ credentialsSecret: "wrong-keys" }) }, auth);
      const failed = await synced("collections/refused");
      expect(failed.state).toBe(pb.Collection_State.FAILED);
      expect(failed.error).toMatch(/cannot be listed/);
    } finally {
      await other.stop();
    }
  });

  it("clear errors: ALREADY_EXISTS, NOT_FOUND, PERMISSION_DENIED outside the allow-list, a write key needed, FAILED_PRECONDITION deleting a folder's photo", async () => {
    const folder = { source: { kind: { case: "folder" as const, value: { path: join(root, "allowed", "holiday") } } } };
    const code = (p: Promise<unknown>) => p.then(() => Code.Unknown as Code, (e: unknown) => ConnectError.from(e).code);
    expect(await code(client.createCollection({ collectionId: "holiday", collection: folder }, auth))).toBe(Code.AlreadyExists);
    expect(await code(client.getCollection({ name: "collections/nope" }))).toBe(Code.NotFound);
    expect(await code(client.createCollection({ collectionId: "outside", collection: { source: { kind: { case: "folder", value: { path: root } } } } }, auth))).toBe(Code.PermissionDenied);
    expect(await code(client.createCollection({ collectionId: "nokey", collection: folder }))).toBe(Code.Unauthenticated);
    expect(await code(client.createCollection({ collectionId: "Bad_Id", collection: folder }, auth))).toBe(Code.InvalidArgument);
    expect(await code(client.createCollection({ collectionId: "relative", collection: { source: { kind: { case: "folder", value: { path: "allowed/holiday" } } } } }, auth))).toBe(Code.InvalidArgument);
    expect(await code(client.createPhoto({ parent: "collections/inbox", image: readFileSync(join(DEMO, demoPhotos[3]!)), filename: "../escape.jpg" }, auth))).toBe(Code.InvalidArgument);
    const photos = (await client.listPhotos({ parent: "collections/holiday" })).photos;
    expect(await code(client.deletePhoto({ name: photos[0]!.name }, auth))).toBe(Code.FailedPrecondition);
  });

  it("a source that disappears fails the sync with a clear error and leaves the published version", async () => {
    const dir = join(root, "allowed", "fragile");
    mkdirSync(dir);
    for (const f of demoPhotos.slice(50, 52)) copyFileSync(join(DEMO, f), join(dir, f));
    await client.createCollection({ collectionId: "fragile", collection: { source: { kind: { case: "folder", value: { path: dir } } } } }, auth);
    const ok = await synced("collections/fragile");
    rmSync(dir, { recursive: true });
    await client.syncCollection({ name: "collections/fragile" }, auth);
    const failed = await synced("collections/fragile");
    expect(failed.state).toBe(pb.Collection_State.FAILED);
    expect(failed.error).toContain(dir);
    expect(failed.version).toBe(ok.version);
    expect(failed.counts!.indexed).toBe(2n);
  });

  it("deletes a collection and everything stored under it", async () => {
    await client.deleteCollection({ name: "collections/fragile" }, auth);
    const keys: string[] = [];
    for await (const o of store.list("collections/fragile/")) keys.push(o.key);
    expect(keys).toEqual([]);
    const list = (await client.listCollections({})).collections.map((c) => c.name);
    expect(list).not.toContain("collections/fragile");
    expect(list).toContain("collections/holiday");
  });
});
