/**
 * A watched bucket collection following MinIO's bucket notifications: a real MinIO whose
 * webhook target posts to a real gateway in front of a real Data service (real sockets). The
 * re-list is set to an hour, so only the notifications can make the collection follow.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { collection as pb, data } from "@glimpse/api";
import { build as buildGateway, type RunningGateway } from "@glimpse/gateway";
import { readCatalog } from "@glimpse/layout";
import { createObjectStore, MinioObjectStore, type ObjectStore } from "@glimpse/objectstore";
import { startMinio, type MinioServer } from "@glimpse/objectstore/testing";
import type { RunningServer } from "@glimpse/rpc";
import { TEST_READ_KEY, TEST_WRITE_KEY, freePorts, testConfig } from "@glimpse/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { build } from "../server.js";

const DEMO = resolve(import.meta.dirname, "../../../../demo/images");
const demoPhotos = readdirSync(DEMO).sort();
const auth = { headers: { authorization: `Bearer ${TEST_WRITE_KEY}` } };
const BUCKET = "glimpse-notify";
const TARGET = "GLIMPSE";
const ARN = `arn:minio:sqs::${TARGET}:webhook`;
const PREFIX = "catalog/2026/";

/** A record as MinIO posts it (captured from the real binary), fields the request does not name included. */
function minioEvent(o: { name: string; bucket?: string; key: string; time: string; etag?: string; size?: number }) {
  const encoded = encodeURIComponent(o.key).replace(/%20/g, "+");
  return {
    EventName: o.name,
    Key: `${o.bucket ?? BUCKET}/${o.key}`,
    Records: [
      {
        eventVersion: "2.0",
        eventSource: "minio:s3",
        awsRegion: "",
        eventTime: o.time,
        eventName: o.name,
        userIdentity: { principalId: "minioadmin" },
        requestParameters: { principalId: "minioadmin", region: "", sourceIPAddress: "127.0.0.1" },
        responseElements: { "x-amz-request-id": "18EEC9E7C8572A8C", "x-minio-deployment-id": "8bc6aa95-d35e-43e2-8fc1-feccbf918df6" },
        s3: {
          s3SchemaVersion: "1.0",
          configurationId: "Config",
          bucket: { name: o.bucket ?? BUCKET, ownerIdentity: { principalId: "minioadmin" }, arn: `arn:aws:s3:::${o.bucket ?? BUCKET}` },
          object: { key: encoded, ...(o.size !== undefined ? { size: o.size } : {}), ...(o.etag ? { eTag: o.etag } : {}), contentType: "image/jpeg", userMetadata: { "content-type": "image/jpeg" }, sequencer: "18EEC9E7C86AEB25" },
        },
        source: { host: "127.0.0.1", port: "", userAgent: "MinIO (linux; x64) minio-js/8.0.7" },
      },
    ],
  };
}

describe("watched bucket collections follow MinIO's bucket notifications (real MinIO → gateway → Data)", () => {
  let minio: MinioServer;
  let queueDir: string;
  let server: RunningServer;
  let gateway: RunningGateway;
  let base: string;
  let store: ObjectStore;
  let client: ReturnType<typeof createClient<typeof data.DataService>>;

  beforeAll(async () => {
    // The gateway's port first: MinIO is told where to post before anything listens there, as
    // in a cluster where MinIO may start before the gateway (the queue keeps the events).
    const [gatewayPort] = await freePorts(1);
    base = `http://127.0.0.1:${gatewayPort}`;
    queueDir = mkdtempSync(join(tmpdir(), "glimpse-minio-queue-"));
    minio = await startMinio({
      env: {
        [`MINIO_NOTIFY_WEBHOOK_ENABLE_${TARGET}`]: "on",
        [`MINIO_NOTIFY_WEBHOOK_ENDPOINT_${TARGET}`]: `${base}/v1/storage-events`,
        [`MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_${TARGET}`]: TEST_WRITE_KEY,
        [`MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_${TARGET}`]: queueDir,
      },
    });
    const cfg = testConfig({
      MINIO_ENDPOINT: minio.endpoint,
      MINIO_ACCESS_KEY: minio.accessKey,
      MINIO_SECRET_KEY: minio.secretKey,
      MINIO_BUCKET: BUCKET,
      GLIMPSE_STORE_NOTIFY_ARN: ARN,
      GLIMPSE_COLLECTION_RELIST_MS: "3600000",
      GLIMPSE_RANKING_URL: "http://127.0.0.1:9",
    });
    server = await build(cfg, { port: 0 });
    gateway = await buildGateway(cfg, { port: gatewayPort!, targets: [{ name: "data", url: server.url }] });
    store = createObjectStore({ kind: "minio", endpoint: minio.endpoint, accessKey: minio.accessKey, secretKey: minio.secretKey, bucket: BUCKET });
    client = createClient(data.DataService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
  }, 120_000);

  afterAll(async () => {
    await gateway?.close(100);
    await server?.close(100);
    await store?.close?.();
    await minio?.stop();
    if (queueDir) rmSync(queueDir, { recursive: true, force: true });
  });

  async function synced(name: string): Promise<pb.Collection> {
    let last: pb.Collection | undefined;
    for await (const m of client.watchCollection({ name, untilSynced: true })) last = m.collection;
    return last!;
  }

  async function until(name: string, ok: (c: pb.Collection) => boolean, what: string): Promise<pb.Collection> {
    // bounded by count, not by time: only a notification can get it there (the re-list is an hour)
    for (let i = 0; i < 300; i++) {
      const c = (await client.getCollection({ name })).collection!;
      if (ok(c) && c.state !== pb.Collection_State.SYNCING) return c;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`collection ${name} never reached: ${what}`);
  }

  const post = async (body: unknown, key: string | undefined = TEST_WRITE_KEY) => {
    const res = await fetch(`${base}/v1/storage-events`, { method: "POST", headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) }, body: JSON.stringify(body) });
    const json = (await res.json()) as Record<string, unknown>;
    return { status: res.status, applied: json["applied"] ?? 0, dropped: json["dropped"] ?? 0, ignored: json["ignored"] ?? 0, collections: json["collections"] ?? [], json };
  };

  it("the Data service pointed the bucket's events at the webhook target on start-up", async () => {
    const notifications = await (store as MinioObjectStore).client.getBucketNotification(BUCKET);
    const ours = notifications.QueueConfiguration.filter((q) => q.Queue === ARN);
    expect(ours).toHaveLength(1);
    expect([...ours[0]!.Event].sort()).toEqual(["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]);
    // idempotent: a restart finds it set
    expect(await (store as MinioObjectStore).setBucketEventTarget(ARN)).toBe("unchanged");
  });

  it("photos put and deleted under the prefix are followed through notifications alone", async () => {
    await client.createCollection({ collectionId: "shop", collection: { watch: true, source: { kind: { case: "bucket", value: { prefix: PREFIX } } } } }, auth);
    const first = await synced("collections/shop");
    expect(first.counts!.indexed).toBe(0n);
    const files = demoPhotos.slice(0, 3);
    for (const f of files) await store.put(`${PREFIX}${f}`, readFileSync(join(DEMO, f)), { contentType: "image/jpeg" });
    const three = await until("collections/shop", (c) => c.counts!.indexed === 3n, "3 photos after 3 puts");
    expect(three.version).not.toBe(first.version);
    await store.delete(`${PREFIX}${files[0]}`);
    const two = await until("collections/shop", (c) => c.counts!.indexed === 2n, "2 photos after a delete");
    expect(two.version).not.toBe(three.version);
    const paths = (await client.listPhotos({ parent: "collections/shop" })).photos.map((p) => p.path).sort();
    expect(paths).toEqual(files.slice(1).map((f) => `${PREFIX}${f}`).sort());
  });

  it("a stale or already-applied event is dropped and starts no sync; events about no watched collection are ignored", async () => {
    const before = (await client.getCollection({ name: "collections/shop" })).collection!;
    const catalog = await readCatalog(store, "shop");
    const key = `${PREFIX}${demoPhotos[1]}`;
    const entry = catalog.entries[key]!;
    expect(entry).toBeDefined();
    // ObjectCreated older than the catalog's record of the key (another ETag: an earlier write)
    const stale = await post(minioEvent({ name: "s3:ObjectCreated:Put", key, time: new Date(entry.mtime - 60_000).toISOString(), etag: "0123456789abcdef0123456789abcdef", size: 5 }));
    expect([stale.status, stale.applied, stale.dropped, stale.ignored, stale.collections]).toEqual([200, 0, 1, 0, []]);
    // the same event MinIO sent for the catalog's version, delivered again
    const again = await post(minioEvent({ name: "s3:ObjectCreated:Put", key, time: new Date(entry.mtime + 5).toISOString(), etag: entry.etag!, size: entry.size }));
    expect([again.status, again.applied, again.dropped]).toEqual([200, 0, 1]);
    // the deleted photo's ObjectRemoved again: the catalog no longer holds it
    const removed = await post(minioEvent({ name: "s3:ObjectRemoved:Delete", key: `${PREFIX}${demoPhotos[0]}`, time: new Date().toISOString() }));
    expect([removed.status, removed.applied, removed.dropped]).toEqual([200, 0, 1]);
    // another bucket, a key outside the prefix, the service's own keys: not a watched collection's
    for (const e of [
      minioEvent({ name: "s3:ObjectCreated:Put", bucket: "someone-else", key, time: new Date().toISOString(), etag: "ffff", size: 1 }),
      minioEvent({ name: "s3:ObjectCreated:Put", key: "catalog/2025/old photo.jpg", time: new Date().toISOString(), etag: "ffff", size: 1 }),
      minioEvent({ name: "s3:ObjectCreated:Put", key: "collections/shop/catalog.json", time: new Date().toISOString(), etag: "ffff", size: 1 }),
    ]) {
      const r = await post(e);
      expect([r.status, r.applied, r.dropped, r.ignored], JSON.stringify(r.json)).toEqual([200, 0, 0, 1]);
    }
    // none of them started a sync: after the debounce (1 s) has passed twice, nothing ran
    await new Promise((r) => setTimeout(r, 2_500));
    const after = (await client.getCollection({ name: "collections/shop" })).collection!;
    expect(after.version).toBe(before.version);
    expect(after.lastSyncTime).toEqual(before.lastSyncTime);
    expect(after.state).toBe(pb.Collection_State.READY);
  });

  it("an event for a key that changed is applied, and the collection names it", async () => {
    const key = `${PREFIX}by hand+1.jpg`;
    const r = await post(minioEvent({ name: "s3:ObjectCreated:Put", key, time: new Date().toISOString(), etag: "abc", size: 3 }));
    // nothing is there: the sync it starts lists the prefix and changes nothing
    expect([r.status, r.applied, r.collections]).toEqual([200, 1, ["collections/shop"]]);
  });

  it("the endpoint takes a write key: none → 401, a read key → 403", async () => {
    const e = minioEvent({ name: "s3:ObjectCreated:Put", key: `${PREFIX}x.jpg`, time: new Date().toISOString(), etag: "abc", size: 3 });
    expect((await post(e, "")).status).toBe(401);
    expect((await post(e, TEST_READ_KEY)).status).toBe(403);
    expect((await post(e, "not-a-key")).status).toBe(401);
  });
});
