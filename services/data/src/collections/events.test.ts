import { create } from "@bufbuild/protobuf";
import { data } from "@glimpse/api";
import { COLLECTION_SCHEMA, type CatalogEntry, type CollectionRecord } from "@glimpse/layout";
import { describe, expect, it } from "vitest";
import { decodeEventKey, dropReason, storageEvents, watchesKey, type StorageEvent } from "./events.js";

const record = (source: CollectionRecord["source"], watch = true): CollectionRecord => ({ schema: COLLECTION_SCHEMA, id: "shop", display_name: "shop", source, watch, create_time: "2026-01-01T00:00:00Z" });
const T = Date.parse("2026-07-01T12:00:00.000Z");
const entry = (over: Partial<CatalogEntry> = {}): CatalogEntry => ({ path: "catalog/2026/a.jpg", etag: "e1", size: 10, mtime: T, state: "ok", ...over });
const event = (over: Partial<StorageEvent> = {}): StorageEvent => ({ bucket: "glimpse", key: "catalog/2026/a.jpg", kind: "created", time: T, etag: "e1", size: 10, ...over });

describe("bucket notifications: which events a watched bucket collection acts on", () => {
  it("decodes MinIO's query-escaped keys", () => {
    expect(decodeEventKey("catalog%2F2026%2Fa+b%2Bc.jpg")).toBe("catalog/2026/a b+c.jpg");
    expect(decodeEventKey("caf%C3%A9.jpg")).toBe("café.jpg");
    expect(decodeEventKey("bad%E0%A4%A.jpg")).toBeUndefined();
  });

  it("reads the records of a notification: kind, time, bucket, key, etag", () => {
    const req = create(data.ReceiveStorageEventsRequestSchema, {
      eventName: "s3:ObjectRemoved:Delete",
      key: "glimpse/catalog/2026/a b.jpg",
      records: [
        { eventName: "s3:ObjectCreated:Put", eventTime: "2026-07-01T12:00:00.000Z", s3: { bucket: { name: "glimpse" }, object: { key: "catalog%2F2026%2Fa+b.jpg", size: 5n, etag: "\"abc\"" } } },
        { eventName: "s3:ObjectRemoved:Delete", eventTime: "not a time", s3: { bucket: { name: "other" }, object: { key: "x.jpg" } } },
        { eventName: "s3:ObjectAccessed:Get", s3: { bucket: { name: "glimpse" }, object: { key: "x.jpg" } } },
      ],
    });
    expect(storageEvents(req)).toEqual([
      { bucket: "glimpse", key: "catalog/2026/a b.jpg", kind: "created", time: T, etag: "abc", size: 5 },
      { bucket: "other", key: "x.jpg", kind: "removed", time: undefined, etag: "", size: 0 },
      { bucket: "glimpse", key: "x.jpg", kind: "other", time: undefined, etag: "", size: 0 },
    ]);
  });

  it("a key concerns a watched prefix of the configured store only, never the service's own collections/ keys", () => {
    const shop = record({ kind: "bucket", prefix: "catalog/2026/" });
    expect(watchesKey(shop, "catalog/2026/a.jpg")).toBe(true);
    expect(watchesKey(shop, "catalog/2026/summer/b.jpg")).toBe(true);
    expect(watchesKey(shop, "catalog/2025/a.jpg")).toBe(false);
    expect(watchesKey(shop, "catalog/2026/")).toBe(false); // a "folder" marker
    expect(watchesKey(record({ kind: "bucket", prefix: "catalog/2026/" }, false), "catalog/2026/a.jpg")).toBe(false);
    expect(watchesKey(record({ kind: "bucket", prefix: "catalog/", bucket: "elsewhere" }), "catalog/a.jpg")).toBe(false);
    expect(watchesKey(record({ kind: "bucket", prefix: "catalog/", endpoint: "https://s3.example.com" }), "catalog/a.jpg")).toBe(false);
    expect(watchesKey(record({ kind: "folder", path: "/srv/photos" }), "catalog/a.jpg")).toBe(false);
    const whole = record({ kind: "bucket", prefix: "" });
    expect(watchesKey(whole, "a.jpg")).toBe(true);
    expect(watchesKey(whole, "collections/shop/catalog.json")).toBe(false);
  });

  it("drops what the catalog already knows better: stale, already applied, nothing to remove", () => {
    // ObjectCreated
    expect(dropReason(event({ etag: "e2", time: T - 1 }), entry(), true)).toBe("stale");
    expect(dropReason(event(), entry(), true)).toBe("already-applied");
    expect(dropReason(event({ etag: "e2", time: T + 1000 }), entry(), true)).toBeUndefined();
    expect(dropReason(event({ etag: "e2" }), entry(), true)).toBeUndefined(); // the same ms: not older
    expect(dropReason(event(), undefined, true)).toBeUndefined();
    expect(dropReason(event({ etag: "e2", time: undefined }), entry(), true)).toBeUndefined(); // no time: cannot say
    // ObjectRemoved
    expect(dropReason(event({ kind: "removed", etag: "", time: T + 1000 }), entry(), true)).toBeUndefined();
    expect(dropReason(event({ kind: "removed", etag: "", time: T - 1000 }), entry(), true)).toBe("stale"); // re-created since
    expect(dropReason(event({ kind: "removed", etag: "" }), undefined, true)).toBe("nothing-to-remove");
    // a sync under way may have listed the key before it was removed: the catalog cannot say yet
    expect(dropReason(event({ kind: "removed", etag: "" }), undefined, false)).toBeUndefined();
  });
});
