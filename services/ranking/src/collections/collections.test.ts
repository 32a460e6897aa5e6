/**
 * Collections through a started Ranking server (issue #23), over real gRPC: versions published
 * as the Data service publishes a sync, their indexes computed by the embedded default's index
 * builder (a worker process running `index-shard --dataset collections/<id>`), then searched by
 * text, by photo bytes and by photo id, with filters and a score floor; duplicates; incremental
 * versions; a deleted collection. The demo model and pack (Flickr8K test images with captions).
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { ranking } from "@glimpse/api";
import { DuplicateGroup_Kind } from "@glimpse/api/gen/glimpse/data/v1/collection_pb.js";
import { COLLECTION_SCHEMA, collectionPrefix, collectionRecordKey, thumbnailUrl } from "@glimpse/layout";
import { createObjectStore, type ObjectStore } from "@glimpse/objectstore";
import { testConfig } from "@glimpse/runtime/testing";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readIndexDocument } from "../index/store.js";
import { dot } from "../index/topk.js";
import type { JobRecord } from "../index/shard.js";
import { DEFAULT_DEMO_DIR, seedDemo } from "../seed.js";
import { build, type RankingServer } from "../server.js";
import { demoImageIds, demoPhoto, photoIdOf, publishPhotos, type TestPhoto } from "../testing/collections.js";
import { failure, rankingClient, until, type RankingClient } from "../testing/harness.js";
import { collectionDataset } from "./source.js";

const captions = JSON.parse(readFileSync(join(DEFAULT_DEMO_DIR, "captions.json"), "utf8")) as Record<string, string[]>;
const ids = demoImageIds();
const NAME = "collections/holiday";

/** 10 trip photos (a Canon, June 2024), 10 home photos (an iPhone, 2023), a mirrored copy of the first, the second also backed up. */
function firstPhotos(mirror: Buffer): TestPhoto[] {
  return [
    ...ids.slice(0, 10).map((id, i) =>
      demoPhoto(id, { path: `trip/${id}.jpg`, camera_model: "Canon EOS 5D", taken_time: `2024-06-${String(i + 1).padStart(2, "0")}T10:00:00.000Z`, ...(i === 1 ? { duplicate_paths: [`backup/${id}.jpg`] } : {}) }),
    ),
    ...ids.slice(10, 20).map((id, i) => demoPhoto(id, { path: `home/${id}.jpg`, camera_model: "iPhone 12", taken_time: `2023-03-${String(i + 1).padStart(2, "0")}T10:00:00.000Z` })),
    { bytes: mirror, path: "trip/mirror.jpg", camera_model: "", taken_time: "2024-07-01T10:00:00.000Z" },
  ];
}

describe("collections served by Ranking", () => {
  let store: ObjectStore;
  let server: RankingServer;
  let client: RankingClient;
  let v1: string;
  let photos: TestPhoto[];
  const pid = (imageId: string) => photoIdOf(demoPhoto(imageId).bytes);

  const serving = (version: string) =>
    until(`collection version ${version} to serve`, async () => {
      const r = await client.getCollectionIndex({ name: NAME });
      if (r.pending?.failed) throw new Error(`index build failed: ${r.pending.detail}`);
      return r.servingVersion === version ? r : undefined;
    }, 180_000);
  const search = (req: Omit<ranking.SearchCollectionRequest, "$typeName" | "name" | "topK" | "minScore" | "filter"> & { topK?: number; minScore?: number; filter?: ranking.PhotoFilter | Record<string, unknown> }) =>
    client.searchCollection({ name: NAME, ...req } as Parameters<RankingClient["searchCollection"]>[0]);

  beforeAll(async () => {
    store = createObjectStore({ kind: "fs", root: mkdtempSync(join(tmpdir(), "glimpse-collections-")), bucket: "glimpse" });
    await store.init();
    await seedDemo(store, DEFAULT_DEMO_DIR);
    photos = firstPhotos(await sharp(demoPhoto(ids[0]!).bytes).flop().jpeg({ quality: 90 }).toBuffer());
    v1 = await publishPhotos(store, "holiday", photos);
    server = await build(testConfig(), { port: 0, store, pollMs: 200, demoDir: null });
    client = rankingClient(server.url);
  }, 180_000);
  afterAll(() => server?.close(100));

  it("NOT_FOUND for no such collection; FAILED_PRECONDITION until a first sync is published and embedded", { timeout: 200_000 }, async () => {
    expect(await failure(client.searchCollection({ name: "collections/nope", query: { case: "text", value: "a dog" } }))).toMatchObject({ code: Code.NotFound });
    expect(await failure(client.getCollectionIndex({ name: "collections/nope" }))).toMatchObject({ code: Code.NotFound });
    // created, its first sync still running
    await store.put(collectionRecordKey("later"), JSON.stringify({ schema: COLLECTION_SCHEMA, id: "later", display_name: "later", source: { kind: "uploads" }, watch: false, create_time: new Date().toISOString() }));
    expect(await failure(client.searchCollection({ name: "collections/later", query: { case: "text", value: "a dog" } }))).toMatchObject({ code: Code.FailedPrecondition, reason: "COLLECTION_NOT_SYNCED" });
    // published: its index is being computed by a worker process, and says so
    const first = await failure(search({ query: { case: "text", value: "a dog" } }));
    expect(first).toMatchObject({ code: Code.FailedPrecondition, reason: "COLLECTION_NOT_INDEXED" });
    expect(first.message).toMatch(/^collection holiday has no index yet: its first sync is being embedded/);
    const st = await client.getCollectionIndex({ name: NAME });
    expect(st).toMatchObject({ servingVersion: "", modelVersion: "", pending: { dataset: NAME, datasetVersion: v1, executor: "local", failed: false } });

    const ready = await serving(v1);
    expect(ready).toMatchObject({ servingVersion: v1, modelVersion: server.manager.serving!.model.version, nearDuplicates: 2n });
    expect(ready.pending).toBeUndefined();
    const doc = (await readIndexDocument(store, ready.modelVersion, collectionDataset("holiday"), v1))!;
    expect(doc.build as unknown as JobRecord).toMatchObject({ images_embedded: 21, images_reused: 0 });
  });

  it("by text: the photo whose caption is asked for comes first or near it; ordered by the score shown (cosine + bias)", async () => {
    const s = server.manager.serving!;
    const served = server.manager.collections.get("holiday", s.model.version)!;
    let top3 = 0;
    for (const id of ids.slice(0, 20)) {
      const r = await search({ query: { case: "text", value: captions[id]![0]! }, topK: 5 });
      expect(r).toMatchObject({ modelVersion: s.model.version, collectionVersion: v1 });
      expect(r.results.map((h) => h.rank)).toEqual([1, 2, 3, 4, 5]);
      for (let i = 1; i < r.results.length; i++) expect(r.results[i]!.score).toBeLessThanOrEqual(r.results[i - 1]!.score);
      // the score is the ordering score: cosine + the photo's query-bank bias
      const q = await s.model.embedText(captions[id]![0]!);
      for (const h of r.results) {
        const row = served.rowOf(h.photoId)!;
        expect(h.score).toBeCloseTo(dot(served.index.data.imageEmb, row * served.index.data.dim, q, q.length) + served.index.imageBias(row), 5);
      }
      if (r.results.slice(0, 3).some((h) => h.photoId === pid(id))) top3++;
    }
    expect(top3).toBeGreaterThanOrEqual(18);

    // a hit tells what the manifest says of its photo
    for (const h of (await search({ query: { case: "text", value: "a dog runs on the grass" }, topK: 21 })).results) {
      const p = photos.find((x) => photoIdOf(x.bytes) === h.photoId)!;
      expect(h).toMatchObject({ path: p.path, thumbnailUrl: thumbnailUrl("holiday", h.photoId), width: 224, height: 224, takenTime: timestampFromDate(new Date(p.taken_time!)), cameraModel: p.camera_model });
    }
    expect((await search({ query: { case: "text", value: "a dog" } })).results).toHaveLength(10);
  });

  it("filters (taken time, path prefix, camera case-insensitively), the score floor, and top_k", async () => {
    const text = { case: "text" as const, value: "people outside" };
    const home = await search({ query: text, topK: 100, filter: { pathPrefix: "home/" } });
    expect(home.results.map((h) => h.path).sort()).toEqual(ids.slice(10, 20).map((id) => `home/${id}.jpg`).sort());
    const canon = await search({ query: text, topK: 100, filter: { cameraModel: "canon eos 5D" } });
    expect(canon.results.map((h) => h.photoId).sort()).toEqual(ids.slice(0, 10).map(pid).sort());
    const june3to5 = await search({ query: text, topK: 100, filter: { takenAfter: timestampFromDate(new Date("2024-06-03T10:00:00Z")), takenBefore: timestampFromDate(new Date("2024-06-06T10:00:00Z")) } });
    expect(june3to5.results.map((h) => h.photoId).sort()).toEqual(ids.slice(2, 5).map(pid).sort());
    const none = await search({ query: text, filter: { cameraModel: "Canon EOS 5D", pathPrefix: "home/" } });
    expect(none.results).toEqual([]);

    const all = (await search({ query: text, topK: 100 })).results;
    expect(all).toHaveLength(21);
    const floor = all[7]!.score;
    const above = (await search({ query: text, topK: 100, minScore: floor })).results;
    expect(above.map((h) => h.photoId)).toEqual(all.filter((h) => h.score >= floor).map((h) => h.photoId));
    expect(above.length).toBeLessThan(21);
  });

  it("more like this (photo_id): the photo itself left out, its mirrored copy first; by uploaded bytes; bad input", async () => {
    const like = await search({ query: { case: "photoId", value: pid(ids[0]!) }, topK: 20 });
    expect(like.results).toHaveLength(20);
    expect(like.results.map((h) => h.photoId)).not.toContain(pid(ids[0]!));
    expect(like.results[0]!.path).toBe("trip/mirror.jpg");
    for (let i = 1; i < like.results.length; i++) expect(like.results[i]!.score).toBeLessThanOrEqual(like.results[i - 1]!.score);
    // with a filter that leaves it out anyway, and with a floor
    expect((await search({ query: { case: "photoId", value: pid(ids[0]!) }, topK: 3, filter: { pathPrefix: "trip/" } })).results.map((h) => h.path)[0]).toBe("trip/mirror.jpg");

    const upload = await search({ query: { case: "image", value: demoPhoto(ids[5]!).bytes }, topK: 3 });
    expect(upload.results[0]!.photoId).toBe(pid(ids[5]!));

    const unknown = await failure(search({ query: { case: "photoId", value: "0123456789abcdef" } }));
    expect(unknown).toMatchObject({ code: Code.NotFound });
    expect(unknown.violations.map((v) => v.field)).toEqual(["photo_id"]);
    const bad = await failure(search({ query: { case: "image", value: Buffer.from("not an image") } }));
    expect(bad).toMatchObject({ code: Code.InvalidArgument });
    expect(bad.violations.map((v) => v.field)).toEqual(["image"]);
    expect((await failure(client.searchCollection({ name: "holiday", query: { case: "text", value: "a dog" } }))).code).toBe(Code.InvalidArgument);
  });

  it("duplicates: exact from the manifest, near from the index", async () => {
    const d = await client.listCollectionDuplicates({ parent: NAME });
    expect(d).toMatchObject({ nearThreshold: expect.closeTo(0.95, 6), collectionVersion: v1, modelVersion: server.manager.serving!.model.version });
    expect(d.groups.filter((g) => g.kind === DuplicateGroup_Kind.EXACT).map((g) => [g.photoIds, g.paths])).toEqual([[[pid(ids[1]!)], [`trip/${ids[1]}.jpg`, `backup/${ids[1]}.jpg`]]]);
    const near = d.groups.filter((g) => g.kind === DuplicateGroup_Kind.NEAR);
    expect(near).toHaveLength(1);
    expect([...near[0]!.paths].sort()).toEqual([`trip/${ids[0]}.jpg`, "trip/mirror.jpg"]);
    expect(near[0]!.score).toBeGreaterThanOrEqual(0.95);
  });

  it("a new version re-uses the index's rows: 3 new photos embedded, deleted ones gone, a renamed one under its new path; nothing new embeds nothing", { timeout: 300_000 }, async () => {
    // 2 deleted, 1 renamed, 3 new
    const v2photos = [...photos.filter((p) => p.path !== `trip/${ids[2]}.jpg` && p.path !== `trip/${ids[3]}.jpg` && p.path !== `home/${ids[19]}.jpg`), demoPhoto(ids[19]!, { path: "renamed/last.jpg" }), ...ids.slice(20, 23).map((id) => demoPhoto(id, { path: `new/${id}.jpg` }))];
    const v2 = await publishPhotos(store, "holiday", v2photos, v1);
    const st = await serving(v2);
    expect((await readIndexDocument(store, st.modelVersion, collectionDataset("holiday"), v2))!.build as unknown as JobRecord).toMatchObject({ images_embedded: 3, images_reused: 19, reused_from: v1 });

    for (const gone of [ids[2]!, ids[3]!]) {
      const r = await search({ query: { case: "text", value: captions[gone]![0]! }, topK: 100 });
      expect(r.collectionVersion).toBe(v2);
      expect(r.results).toHaveLength(22);
      expect(r.results.map((h) => h.photoId)).not.toContain(pid(gone));
    }
    const renamed = (await search({ query: { case: "text", value: captions[ids[19]!]![0]! }, topK: 100 })).results.find((h) => h.photoId === pid(ids[19]!));
    expect(renamed?.path).toBe("renamed/last.jpg");
    const fresh = (await search({ query: { case: "text", value: captions[ids[21]!]![0]! }, topK: 3 })).results.map((h) => h.photoId);
    expect(fresh).toContain(pid(ids[21]!));

    const v3 = await publishPhotos(store, "holiday", v2photos, v2);
    await serving(v3);
    expect((await readIndexDocument(store, st.modelVersion, collectionDataset("holiday"), v3))!.build as unknown as JobRecord).toMatchObject({ images_embedded: 0, images_reused: 22, reused_from: v2 });
  });

  it("a deleted collection is dropped", { timeout: 60_000 }, async () => {
    for await (const o of store.list(collectionPrefix("holiday"))) await store.delete(o.key);
    await until("the collection to be dropped", () => search({ query: { case: "text", value: "a dog" } }).then(() => undefined, (err: unknown) => (ConnectError.from(err).code === Code.NotFound ? true : undefined)));
    expect(server.manager.collections.get("holiday", server.manager.serving!.model.version)).toBeUndefined();
  });
});
