/**
 * Index Job shards: chunks cover the gallery once whatever the shard count, a stopped worker
 * stores the chunk it was embedding and its replacement goes on from there, and the assembled
 * index is the one an in-process build computes.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createObjectStore, type ObjectStore } from "@glimpse/objectstore";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoadedModel } from "../model/model.js";
import { fetchModel } from "../registry.js";
import { DEFAULT_DEMO_DIR, seedDemo } from "../seed.js";
import { publishDemoImages } from "../testing/harness.js";
import { buildIndex } from "./build.js";
import { CHUNK_IMAGES, chunksPrefix, decodeChunk, encodeChunk, runShard, shardChunks, type ChunkHeader, type JobRecord } from "./shard.js";
import { loadIndex } from "./store.js";

describe("shardChunks", () => {
  it("gives every chunk to exactly one shard, in order, for any shard count", () => {
    for (const images of [0, 1, 127, 128, 129, 1000, 8091]) {
      const all = Array.from({ length: Math.ceil(images / CHUNK_IMAGES) }, (_, c) => c * CHUNK_IMAGES);
      for (const shards of [1, 2, 3, 7, 64]) {
        const got = Array.from({ length: shards }, (_, s) => shardChunks(images, s, shards)).flat();
        expect(got, `${images} images, ${shards} shards`).toEqual(all);
      }
    }
    // balanced: 8091 images = 253 chunks of 32 over 3 shards → 84, 84, 85
    expect(CHUNK_IMAGES).toBe(32);
    expect([0, 1, 2].map((s) => shardChunks(8091, s, 3).length)).toEqual([84, 84, 85]);
  });

  it("round-trips a chunk and refuses a truncated one", () => {
    const h: ChunkHeader = { schema: "glimpse.index-chunk/v1", model_version: "m-0123456789abcdef", dataset_version: "0123456789abcdef", dim: 2, first: 128, count: 2, first_id: "a", last_id: "b", captions: 3, shard: 1, worker: "pod-x" };
    const img = Float32Array.from([1, 2, 3, 4]);
    const cap = Float32Array.from([5, 6, 7, 8, 9, 10]);
    const back = decodeChunk(encodeChunk(h, img, cap));
    expect(back.header).toEqual(h);
    expect([...back.images]).toEqual([...img]);
    expect([...back.captions]).toEqual([...cap]);
    expect(() => decodeChunk(encodeChunk(h, img, cap).subarray(0, -4))).toThrow(/bytes, expected/);
  });
});

describe("an index Job's shard workers", () => {
  let store: ObjectStore;
  let model: LoadedModel;
  let version: string;
  let gallery: string;

  beforeAll(async () => {
    store = createObjectStore({ kind: "fs", root: mkdtempSync(join(tmpdir(), "glimpse-shard-")), bucket: "glimpse" });
    await store.init();
    version = (await seedDemo(store, DEFAULT_DEMO_DIR)).modelVersion!;
    model = await LoadedModel.load(version, (await fetchModel(store, version)).files, { executionProvider: "cpu", intraOpThreads: 1, interOpThreads: 1 });
    gallery = await publishDemoImages(store, "flickr8k", CHUNK_IMAGES + 12);
  }, 120_000);
  afterAll(async () => {
    await model?.release();
  });

  it("a worker stopped after its first chunk loses nothing; its replacement finishes, assembles the index once, and it equals an in-process build", { timeout: 300_000 }, async () => {
    const base = { store, modelVersion: version, dataset: "flickr8k", datasetVersion: gallery, shard: 0, shards: 1, job: "glimpse-index-test", model: async () => model };
    let chunks = 0;
    const first = await runShard({ ...base, worker: "pod-a", stopping: () => chunks >= 1, log: (msg) => void (msg === "chunk stored" && chunks++) });
    expect(first).toMatchObject({ assembled: false, stopped: true, embedded: 1, images: CHUNK_IMAGES });
    const stored = [];
    for await (const o of store.list(chunksPrefix(version, "flickr8k", gallery))) stored.push(o.key.split("/").at(-1));
    expect(stored).toEqual(["0000000.bin"]);

    const second = await runShard({ ...base, worker: "pod-b" });
    expect(second).toMatchObject({ assembled: true, stopped: false, embedded: 1, images: 12 });
    const rec = second.document!.build as unknown as JobRecord;
    expect(rec).toMatchObject({ job: "glimpse-index-test", shards: 1, chunk_images: CHUNK_IMAGES, images_embedded: CHUNK_IMAGES + 12 });
    expect(rec.chunks).toEqual([
      { first: 0, count: CHUNK_IMAGES, shard: 0, pod: "pod-a" },
      { first: CHUNK_IMAGES, count: 12, shard: 0, pod: "pod-b" },
    ]);
    // the chunks are gone once assembled; a late worker finds the index and does nothing
    for await (const o of store.list(chunksPrefix(version, "flickr8k", gallery))) throw new Error(`left over: ${o.key}`);
    expect(await runShard({ ...base, worker: "pod-c", model: () => Promise.reject(new Error("must not load")) })).toMatchObject({ assembled: true, embedded: 0 });

    const loaded = (await loadIndex(store, version, "flickr8k", gallery))!.index;
    const reference = (await buildIndex({ store, model, dataset: "flickr8k", datasetVersion: gallery, save: false })).index;
    expect(loaded.data.imageIds).toEqual(reference.data.imageIds);
    expect(loaded.data.imageCaptions).toEqual(reference.data.imageCaptions);
    expect([...loaded.data.imageSplits]).toEqual([...reference.data.imageSplits]);
    const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);
    expect(loaded.data.imageEmb.length).toBe(reference.data.imageEmb.length);
    expect(loaded.data.captionEmb.length).toBe(reference.data.captionEmb.length);
    expect(maxDiff(loaded.data.imageEmb, reference.data.imageEmb)).toBeLessThan(1e-4);
    expect(maxDiff(loaded.data.captionEmb, reference.data.captionEmb)).toBeLessThan(1e-4);
  });

  it("refuses to assemble a chunk of another gallery", { timeout: 120_000 }, async () => {
    const other = await publishDemoImages(store, "flickr8k", 30, 100);
    const prefix = chunksPrefix(version, "flickr8k", other);
    const h: ChunkHeader = { schema: "glimpse.index-chunk/v1", model_version: version, dataset_version: "ffffffffffffffff", dim: model.dim, first: 0, count: 30, first_id: "x", last_id: "y", captions: 0, shard: 0, worker: "elsewhere" };
    await store.put(`${prefix}0000000.bin`, encodeChunk(h, new Float32Array(30 * model.dim), new Float32Array(0)));
    await expect(runShard({ store, modelVersion: version, dataset: "flickr8k", datasetVersion: other, shard: 0, shards: 1, model: async () => model })).rejects.toThrow(/does not belong to this gallery/);
  });
});
