/**
 * Collections through the whole mesh (Data, Ranking, gateway; one filesystem store), by the public API:
 *  - a folder collection of the demo pack's 200 Flickr8K test photos (no captions used), queried with
 *    those photos' 1000 test captions, recalls as the demo gallery of the same photos does;
 *  - a watched folder: 20 photos added and 10 deleted reach search, and only the 20 are embedded.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { startTestMesh, type TestMesh } from "@glimpse/gateway/testing";
import { collectionGallery, indexPrefix } from "@glimpse/layout";
import { getJson } from "@glimpse/objectstore";
import { TEST_WRITE_KEY, testConfig } from "@glimpse/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_DEMO_DIR } from "../seed.js";
import { until } from "../testing/harness.js";

const IMAGES = join(DEFAULT_DEMO_DIR, "images");
const photos = readdirSync(IMAGES).filter((f) => f.endsWith(".jpg")).sort();
const captions = JSON.parse(readFileSync(join(DEFAULT_DEMO_DIR, "captions.json"), "utf8")) as Record<string, string[]>;
const auth = { authorization: `Bearer ${TEST_WRITE_KEY}`, "content-type": "application/json" };

interface Collection { version: string; serving_version: string; model_version: string; counts: { indexed: string } }

describe("collections through the mesh's public API", () => {
  let mesh: TestMesh;
  let root: string;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "glimpse-collections-mesh-"));
    mkdirSync(join(root, "allowed"));
    mesh = await startTestMesh(testConfig({ GLIMPSE_SOURCE_ALLOWLIST: pathToFileURL(join(root, "allowed")).href, GLIMPSE_COLLECTION_RELIST_MS: "60000" }), { rankingPollMs: 200 });
  });

  afterAll(async () => {
    await mesh?.close();
  });

  const post = async (path: string, body: unknown, headers: Record<string, string> = { "content-type": "application/json" }) => {
    const r = await fetch(`${mesh.base}${path}`, { method: "POST", headers, body: JSON.stringify(body) });
    const json = (await r.json()) as Record<string, unknown>;
    if (r.status !== 200) throw new Error(`POST ${path}: ${r.status} ${JSON.stringify(json)}`);
    return json;
  };
  const collection = async (id: string) => ((await (await fetch(`${mesh.base}/v1/collections/${id}`)).json()) as { collection: Collection }).collection;
  const served = (id: string, ok: (c: Collection) => boolean = () => true) =>
    until(`collections/${id} to serve`, async () => {
      const c = await collection(id);
      return c.version && c.serving_version === c.version && ok(c) ? c : undefined;
    }, 120_000);

  async function createFolder(id: string, files: string[], watch: boolean): Promise<string> {
    const dir = join(root, "allowed", id);
    mkdirSync(dir);
    for (const f of files) copyFileSync(join(IMAGES, f), join(dir, f));
    await post(`/v1/collections?collection_id=${id}`, { source: { folder: { path: dir } }, watch }, auth);
    return dir;
  }

  it("recalls the demo photos' captions as the demo gallery of the same photos does (R@10 within 1.5 points)", async () => {
    await createFolder("demo-photos", photos, false);
    await served("demo-photos");
    const queries = photos.flatMap((f) => (captions[f.replace(/\.jpg$/, "")] ?? []).map((text) => ({ text, id: f.replace(/\.jpg$/, "") })));
    expect(queries.length).toBeGreaterThanOrEqual(900);

    let next = 0;
    let collectionHits = 0;
    let galleryHits = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < queries.length) {
          const q = queries[next++]!;
          const c = (await post("/v1/collections/demo-photos:search", { text: q.text, top_k: 10 })) as { results: { path: string }[] };
          if (c.results.some((h) => h.path === `${q.id}.jpg`)) collectionHits++;
          const g = (await post("/inference/text-to-image", { query: q.text, top_k: 10 })) as { results: { image_id: string }[] };
          if (g.results.some((h) => h.image_id === q.id)) galleryHits++;
        }
      }),
    );
    const r10 = (hits: number) => (100 * hits) / queries.length;
    console.log(`R@10 over ${queries.length} captions: collection ${r10(collectionHits).toFixed(2)}, demo gallery ${r10(galleryHits).toFixed(2)}`);
    expect(r10(collectionHits)).toBeGreaterThan(20); // a trained model, not chance (10 of 200 = 5 %)
    // a collection embeds its normalised copy of each photo (re-encoded), the gallery the pack's
    // JPEG: the int8 two-view Lite1 encoder (#25) moves an embedding by 1e-3 to 6e-3 cosine under
    // re-encoding (orientation.test.ts), enough to swap a few near-tied 10th places: 87.5 vs 88.5
    // measured (the Lite0 three-view encoder before it: within 0.2)
    expect(Math.abs(r10(collectionHits) - r10(galleryHits))).toBeLessThanOrEqual(1.5);
  });

  it("a watched folder: 20 photos added and 10 deleted reach search; only the 20 are embedded", async () => {
    const dir = await createFolder("watched", photos.slice(0, 30), true);
    const first = await served("watched", (c) => c.counts.indexed === "30");
    const t0 = Date.now();
    for (const f of photos.slice(100, 120)) copyFileSync(join(IMAGES, f), join(dir, f));
    for (const f of photos.slice(0, 10)) unlinkSync(join(dir, f));
    const next = await served("watched", (c) => c.version !== first.version && c.counts.indexed === "40");
    console.log(`watched folder: +20 −10 reached search after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const doc = await getJson<{ build: { images_embedded: number; images_reused: number } }>(mesh.ranking.store, `${indexPrefix(next.model_version, collectionGallery("watched"), next.version)}index.json`);
    expect(doc.build).toMatchObject({ images_embedded: 20, images_reused: 20 });
    const hits = (await post("/v1/collections/watched:search", { text: "a dog", top_k: 100 })) as { results: { path: string }[]; collection_version: string };
    expect(hits.collection_version).toBe(next.version);
    const paths = hits.results.map((h) => h.path).sort();
    expect(paths).toEqual([...photos.slice(10, 30), ...photos.slice(100, 120)].sort());
  });
});
