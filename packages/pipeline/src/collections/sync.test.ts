import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, unlinkSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { COLLECTION_SCHEMA, type CollectionRecord } from "@glimpse/layout";
import { FsObjectStore } from "@glimpse/objectstore";
import { SourceAllowList } from "../sources.js";
import { describe, expect, it } from "vitest";
import { ingestPhoto } from "../photos.js";
import { storeIngested } from "./ingest.js";
import { syncCollection } from "./sync.js";

const DEMO = resolve(import.meta.dirname, "../../../../demo/images");
const photos = readdirSync(DEMO).sort();

describe("syncCollection: the catalog decides what is read", () => {
  it("reads only new or changed files, decodes only unknown bytes, and publishes nothing when nothing changed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "glimpse-sync-"));
    const store = new FsObjectStore(join(dir, "store"), "glimpse");
    await store.init();
    const folder = join(dir, "photos");
    mkdirSync(folder);
    for (const f of photos.slice(0, 10)) copyFileSync(join(DEMO, f), join(folder, f));
    const record: CollectionRecord = { schema: COLLECTION_SCHEMA, id: "c", display_name: "c", source: { kind: "folder", path: folder }, watch: false, create_time: new Date().toISOString() };
    const allow = SourceAllowList.parse(["file:"]);

    const first = await syncCollection({ store, allow, record });
    expect(first).toMatchObject({ changed: true, read: 10, decoded: 10, previousVersion: "" });
    expect(first.manifest.photos).toHaveLength(10);

    const none = await syncCollection({ store, allow, record });
    expect(none).toMatchObject({ changed: false, read: 0, decoded: 0, version: first.version });

    // +2 new, 1 renamed, 1 deleted, 1 touched (same bytes, new mtime)
    for (const f of photos.slice(10, 12)) copyFileSync(join(DEMO, f), join(folder, f));
    renameSync(join(folder, photos[0]!), join(folder, "renamed.jpg"));
    unlinkSync(join(folder, photos[1]!));
    utimesSync(join(folder, photos[2]!), new Date(), new Date(Date.now() + 5_000));
    const next = await syncCollection({ store, allow, record });
    expect(next).toMatchObject({ changed: true, read: 4, decoded: 2, removed: 2, previousVersion: first.version });
    expect(next.manifest.previous_version).toBe(first.version);
    expect(next.manifest.photos).toHaveLength(11);
    expect(next.manifest.photos.find((p) => p.path === "renamed.jpg")!.photo_id).toBe(first.manifest.photos.find((p) => p.path === photos[0])!.photo_id);
  });

  it("does not decode a photo the caller ingested already (CreatePhoto's upload), and publishes the same version", async () => {
    const dir = mkdtempSync(join(tmpdir(), "glimpse-sync-known-"));
    const allow = SourceAllowList.parse(["file:"]);
    const versions: string[] = [];
    for (const given of [false, true]) {
      const store = new FsObjectStore(join(dir, `store-${given}`), "glimpse");
      await store.init();
      const folder = join(dir, "photos");
      mkdirSync(folder, { recursive: true });
      copyFileSync(join(DEMO, photos[0]!), join(folder, "a.jpg"));
      utimesSync(join(folder, "a.jpg"), new Date(1_700_000_000_000), new Date(1_700_000_000_000));
      const record: CollectionRecord = { schema: COLLECTION_SCHEMA, id: "k", display_name: "k", source: { kind: "folder", path: folder }, watch: false, create_time: new Date().toISOString() };
      const bytes = readFileSync(join(folder, "a.jpg"));
      const photo = await ingestPhoto(bytes);
      if (!photo.ok) throw new Error(photo.message);
      const known = given ? [await storeIngested(store, "k", photo, { path: "a.jpg", size: bytes.length, mtime: 1_700_000_000_000 })] : [];
      const r = await syncCollection({ store, allow, record, known });
      expect(r).toMatchObject({ read: 1, decoded: given ? 0 : 1 });
      versions.push(r.version);
    }
    expect(versions[1]).toBe(versions[0]);
  });
});
