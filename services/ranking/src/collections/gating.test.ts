/**
 * A model swap waits for the collections (issue #23): a newly promoted model whose gallery
 * indexes are stored does not serve while a collection the serving model answers has no index
 * for it. Its builds are asked for, the status says what the switch waits for, and the old model
 * keeps answering collection searches with its own indexes — a replica starting meanwhile too —
 * until the build is stored; then the new model and its collection index serve together. The
 * builder only records what it is asked (as the Kubernetes builder only creates a Job); the test
 * plays the Job.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ranking } from "@glimpse/api";
import { createObjectStore, type ObjectStore } from "@glimpse/objectstore";
import { testConfig } from "@glimpse/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeAlias } from "../registry.js";
import { DEFAULT_DEMO_DIR, seedDemo } from "../seed.js";
import { build, type RankingServer } from "../server.js";
import { demoImageIds, demoPhoto, publishPhotos } from "../testing/collections.js";
import { rankingClient, RecordingBuilder, runIndexJob, until, variantOf, type RankingClient } from "../testing/harness.js";
import { collectionDataset } from "./source.js";

const NAME = "collections/family";

describe("switching models with collections", () => {
  let store: ObjectStore;
  let a: string;
  let v1: string;
  const servers: RankingServer[] = [];

  const start = async (builder = new RecordingBuilder()): Promise<{ server: RankingServer; client: RankingClient; builder: RecordingBuilder }> => {
    const server = await build(testConfig(), { port: 0, store, pollMs: 200, indexBuilder: builder, demoDir: null });
    servers.push(server);
    return { server, client: rankingClient(server.url), builder };
  };
  const searched = (client: RankingClient) => client.searchCollection({ name: NAME, query: { case: "text", value: "children playing" }, topK: 3 });

  beforeAll(async () => {
    store = createObjectStore({ kind: "fs", root: mkdtempSync(join(tmpdir(), "glimpse-collection-gate-")), bucket: "glimpse" });
    await store.init();
    a = (await seedDemo(store, DEFAULT_DEMO_DIR)).modelVersion!;
    v1 = await publishPhotos(store, "family", demoImageIds().slice(40, 52).map((id) => demoPhoto(id)));
    await runIndexJob(store, { model: a, dataset: collectionDataset("family"), datasetVersion: v1 });
  }, 180_000);
  afterAll(async () => {
    for (const s of servers.splice(0)) await s.close(100);
  });

  it("keeps the serving model until every answering collection has an index for the new one, then swaps both", { timeout: 300_000 }, async () => {
    const first = await start();
    expect((await searched(first.client)).modelVersion).toBe(a);

    // B: the same weights, its gallery indexes stored, no collection index
    const b = await variantOf(store, a, "promoted");
    for await (const o of store.list(`models/${b}/indexes/collections/`)) await store.delete(o.key);
    await writeAlias(store, b);
    await first.server.manager.poke();

    const st = await first.client.getModelStatus({});
    expect(st).toMatchObject({ state: ranking.ModelState.SERVING, servingVersion: a, productionVersion: b });
    expect(st.pendingIndex).toMatchObject({ modelVersion: b, dataset: NAME, datasetVersion: v1, executor: "kubernetes" });
    expect(st.pendingIndex!.detail).toContain(`the switch to ${b} waits for the indexes of ${NAME}`);
    expect(first.builder.asked).toContainEqual({ model: b, dataset: NAME, datasetVersion: v1 });
    expect(await first.client.getCollectionIndex({ name: NAME })).toMatchObject({ servingVersion: v1, modelVersion: a, pending: { modelVersion: b, dataset: NAME } });
    expect(await searched(first.client)).toMatchObject({ modelVersion: a, collectionVersion: v1 });

    // a replica starting now serves what the others serve: the previous production, whose collections answer
    const second = await start();
    expect((await second.client.getModelStatus({})).servingVersion).toBe(a);
    expect((await searched(second.client)).modelVersion).toBe(a);

    // the Job stores the collection's index for B: every replica moves, the collection with it
    await runIndexJob(store, { model: b, dataset: NAME, datasetVersion: v1 });
    for (const { client } of [first, second]) {
      await until("the promoted model to serve", async () => ((await client.getModelStatus({})).servingVersion === b ? true : undefined));
      expect(await searched(client)).toMatchObject({ modelVersion: b, collectionVersion: v1 });
      const idx = await client.getCollectionIndex({ name: NAME });
      expect(idx).toMatchObject({ servingVersion: v1, modelVersion: b });
      expect(idx.pending).toBeUndefined();
      expect((await client.getModelStatus({})).pendingIndex).toBeUndefined();
    }
  });
});
