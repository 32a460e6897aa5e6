import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createObjectStore } from "@glimpse/objectstore";
import { describe, expect, it } from "vitest";
import { AUTO_HNSW_MIN_IMAGES, DEFAULT_HNSW, GalleryIndex, resolveIndexKind } from "./gallery.js";
import { indexPrefix, loadIndex, readIndexDocument, saveIndex } from "./store.js";

function index(n: number, dim = 16): GalleryIndex {
  let s = 7;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) - 0.5;
  const emb = new Float32Array(n * dim).map(rnd);
  return new GalleryIndex({
    modelVersion: "m-00000000000000aa",
    dataset: "toy",
    datasetVersion: "00000000000000bb",
    dim,
    builtAt: new Date("2026-01-02T03:04:05Z"),
    imageIds: Array.from({ length: n }, (_, i) => `i${i}`),
    imageSplits: Uint8Array.from({ length: n }, (_, i) => i % 4),
    imageCaptions: Array.from({ length: n }, (_, i) => [`a ${i}`, `b ${i}`]),
    imageEmb: emb,
    captionEmb: new Float32Array(n * 2 * dim).map(rnd),
  });
}

describe("index storage", () => {
  it("round-trips an exact index, adds an HNSW graph on request, and stores the graph", async () => {
    const store = createObjectStore({ kind: "fs", root: mkdtempSync(join(tmpdir(), "glimpse-idx-")), bucket: "t" });
    await store.init();
    const idx = index(300);
    expect(await loadIndex(store, "m-00000000000000aa", "toy", "00000000000000bb")).toBeUndefined();
    const doc = await saveIndex(store, idx, { note: "test" });
    expect(Object.keys(doc.files).sort()).toEqual(["captions.f32", "images.f32"]);
    const back = (await loadIndex(store, "m-00000000000000aa", "toy", "00000000000000bb"))!;
    expect(back.index.data.imageIds).toEqual(idx.data.imageIds);
    expect([...back.index.data.imageSplits]).toEqual([...idx.data.imageSplits]);
    expect(back.index.data.captionEmb).toEqual(idx.data.captionEmb);
    expect(back.index.data.builtAt.toISOString()).toBe("2026-01-02T03:04:05.000Z");
    const q = idx.imageEmbedding(17).slice();
    expect(back.index.searchImages(q, 1)[0]!.row).toBe(17);

    // Asked for HNSW, an exact-only index gets its graph built (the caller stores it).
    const h = (await loadIndex(store, "m-00000000000000aa", "toy", "00000000000000bb", "hnsw"))!;
    expect(h.graphBuilt).toBe(true);
    expect(h.index.kind).toBe("hnsw");
    await saveIndex(store, h.index);
    expect((await readIndexDocument(store, "m-00000000000000aa", "toy", "00000000000000bb"))!.hnsw?.file).toBe("hnsw.usearch");
    const h2 = (await loadIndex(store, "m-00000000000000aa", "toy", "00000000000000bb", "hnsw"))!;
    expect(h2.graphBuilt).toBe(false);
    expect(h2.index.searchImages(q, 1)[0]!.row).toBe(17);

    // auto: exact for a small gallery, even when a graph is stored.
    const auto = (await loadIndex(store, "m-00000000000000aa", "toy", "00000000000000bb", "auto"))!;
    expect(auto.index.kind).toBe("exact");
    expect(auto.index.searchImages(q, 1)[0]!.row).toBe(17);

    // A damaged file is refused.
    await store.put(indexPrefix("m-00000000000000aa", "toy", "00000000000000bb") + "images.f32", Buffer.alloc(300 * 16 * 4));
    await expect(loadIndex(store, "m-00000000000000aa", "toy", "00000000000000bb")).rejects.toThrow(/sha256/);
  });

  it("records how the graph was built; a graph stored before quantization was recorded loads as f32", async () => {
    const store = createObjectStore({ kind: "fs", root: mkdtempSync(join(tmpdir(), "glimpse-idx-")), bucket: "t" });
    await store.init();
    const idx = index(300);
    const q = idx.imageEmbedding(42).slice();
    idx.useHnsw();
    const doc = await saveIndex(store, idx);
    expect(doc.hnsw).toEqual({ file: "hnsw.usearch", quantization: "i8", connectivity: DEFAULT_HNSW.connectivity, expansion_add: DEFAULT_HNSW.expansionAdd, expansion_search: DEFAULT_HNSW.expansionSearch });
    const i8 = (await loadIndex(store, "m-00000000000000aa", "toy", "00000000000000bb", "hnsw"))!;
    expect(i8.graphBuilt).toBe(false);
    expect(i8.index.hnswParams).toEqual(DEFAULT_HNSW);
    expect(i8.index.searchImages(q, 1)[0]!.row).toBe(42);

    // An f32 graph of M = 16 with a document that names no quantization (as #12 stored them).
    const old = index(300);
    old.useHnsw({ quantization: "f32", connectivity: 16, expansionAdd: 128, expansionSearch: 64 });
    const oldDoc = await saveIndex(store, old);
    const { quantization, ...legacy } = oldDoc.hnsw!;
    expect(quantization).toBe("f32");
    await store.put(indexPrefix("m-00000000000000aa", "toy", "00000000000000bb") + "index.json", JSON.stringify({ ...oldDoc, hnsw: legacy }));
    const f32 = (await loadIndex(store, "m-00000000000000aa", "toy", "00000000000000bb", "hnsw"))!;
    expect(f32.graphBuilt).toBe(false);
    // Searched as built, with today's ef_search.
    expect(f32.index.hnswParams).toEqual({ quantization: "f32", connectivity: 16, expansionAdd: 128, expansionSearch: DEFAULT_HNSW.expansionSearch });
    expect(f32.index.searchImages(q, 1)[0]!.row).toBe(42);
  });

  it("auto picks HNSW from AUTO_HNSW_MIN_IMAGES images and exact below; explicit kinds stand", () => {
    expect(resolveIndexKind("auto", AUTO_HNSW_MIN_IMAGES - 1)).toBe("exact");
    expect(resolveIndexKind("auto", AUTO_HNSW_MIN_IMAGES)).toBe("hnsw");
    expect(resolveIndexKind("exact", 10 * AUTO_HNSW_MIN_IMAGES)).toBe("exact");
    expect(resolveIndexKind("hnsw", 10)).toBe("hnsw");
  });
});
