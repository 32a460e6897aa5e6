/**
 * A replica always has something to serve (#22): while the pair the registry names has no stored
 * index, Ranking serves the newest pair that has one, asks the index builder for the missing
 * index, and moves once it is stored. The builder here only records what it is asked — as the
 * Kubernetes builder only creates a Job — and the test plays the Job: it runs the shard workers
 * the Job's pods run. Real gRPC over sockets, a filesystem store.
 */
import { Code } from "@connectrpc/connect";
import { ranking } from "@glimpse/api";
import { createObjectStore, type ObjectStore } from "@glimpse/objectstore";
import { TEST_WRITE_KEY, testConfig } from "@glimpse/runtime/testing";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CHUNK_IMAGES, shardChunks } from "../index/shard.js";
import { indexStored, readIndexDocument } from "../index/store.js";
import { readAlias, writeAlias } from "../registry.js";
import { DEFAULT_DEMO_DIR, seedDemo } from "../seed.js";
import { build, type RankingServer } from "../server.js";
import { publishDemoImages, rankingClient, RecordingBuilder, runIndexJob, unindexedVariantOf, until, type RankingClient } from "../testing/harness.js";
import type { IndexBuilder, IndexPair } from "./index-builder.js";

const State = ranking.ModelState;

/** What an index Job's pods do: every shard worker, then the index is stored. */
async function runJob(store: ObjectStore, pair: IndexPair, shards = 2): Promise<void> {
  await runIndexJob(store, pair, shards);
  expect(await indexStored(store, pair.model, pair.dataset, pair.datasetVersion)).toBe(true);
}

describe("serving while an index is computed elsewhere", () => {
  let store: ObjectStore;
  let demoModel: string;
  const servers: RankingServer[] = [];

  beforeEach(async () => {
    store = createObjectStore({ kind: "fs", root: mkdtempSync(join(tmpdir(), "glimpse-fallback-")), bucket: "glimpse" });
    await store.init();
    demoModel = (await seedDemo(store, DEFAULT_DEMO_DIR)).modelVersion!;
  });
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close(100);
  });

  const start = async (builder: IndexBuilder): Promise<{ server: RankingServer; client: RankingClient }> => {
    const server = await build(testConfig(), { port: 0, store, pollMs: 200, indexBuilder: builder, demoDir: null });
    servers.push(server);
    return { server, client: rankingClient(server.url) };
  };
  const served = async (client: RankingClient) => {
    const st = await client.getModelStatus({});
    return { state: st.state, model: st.servingVersion, datasetVersion: st.index?.datasetVersion, images: Number(st.index?.images ?? 0), pending: st.pendingIndex };
  };

  it("a replica that starts while the newest gallery has no stored index serves the previous version, and moves when the index is stored", { timeout: 300_000 }, async () => {
    const v1 = await publishDemoImages(store, "flickr8k", 20);
    await runJob(store, { model: demoModel, dataset: "flickr8k", datasetVersion: v1 });
    const v2 = await publishDemoImages(store, "flickr8k", 130, 10);
    const builder = new RecordingBuilder();
    const { client } = await start(builder);

    // SERVING at once, over v1; the index it waits for is named, and its computation was asked for
    let s = await served(client);
    expect(s).toMatchObject({ state: State.SERVING, model: demoModel, datasetVersion: v1, images: 20 });
    expect(s.pending).toMatchObject({ modelVersion: demoModel, dataset: "flickr8k", datasetVersion: v2, executor: "kubernetes", job: `job-${v2}`, failed: false });
    expect(builder.asked).toEqual([{ model: demoModel, dataset: "flickr8k", datasetVersion: v2 }]);
    const hits = await client.searchImages({ query: "a dog runs on the grass", topK: 5 });
    expect(hits.results).toHaveLength(5);
    expect(hits.datasetVersion).toBe(v1);
    // nothing computed it in this process: it stays on v1 for as long as the index is missing
    await new Promise((r) => setTimeout(r, 1000));
    expect(await indexStored(store, demoModel, "flickr8k", v2)).toBe(false);
    expect((await served(client)).datasetVersion).toBe(v1);

    await runJob(store, { model: demoModel, dataset: "flickr8k", datasetVersion: v2 });
    s = await until("the replica to serve v2", async () => {
      const x = await served(client);
      return x.datasetVersion === v2 ? x : undefined;
    });
    expect(s).toMatchObject({ state: State.SERVING, model: demoModel, images: 130 });
    expect(s.pending).toBeUndefined();
    expect((await client.searchImages({ query: "a dog runs on the grass", topK: 5 })).datasetVersion).toBe(v2);
    // the Job's record: every image embedded once, by the two workers
    const doc = (await readIndexDocument(store, demoModel, "flickr8k", v2))!;
    const rec = doc.build as { images_embedded: number; chunks: { first: number; count: number; pod: string }[] };
    expect(rec.images_embedded).toBe(130);
    const bySpan = [0, 1].flatMap((shard) => shardChunks(130, shard, 2).map((first) => [first, Math.min(CHUNK_IMAGES, 130 - first), `pod-${shard}`]));
    expect(bySpan.length).toBeGreaterThanOrEqual(2);
    expect(rec.chunks.map((c) => [c.first, c.count, c.pod])).toEqual(bySpan);
  });

  it("a promoted model without a stored index: replicas keep the previous production until its index is stored; a replica that starts meanwhile serves it too", { timeout: 300_000 }, async () => {
    const v1 = await publishDemoImages(store, "flickr8k", 20);
    await runJob(store, { model: demoModel, dataset: "flickr8k", datasetVersion: v1 });
    const builder = new RecordingBuilder();
    const a = await start(builder);
    expect(await served(a.client)).toMatchObject({ state: State.SERVING, model: demoModel, datasetVersion: v1 });

    const next = await unindexedVariantOf(store, demoModel, "promoted");
    await writeAlias(store, next);
    expect(await readAlias(store)).toBe(next);
    await a.server.manager.poke();
    // still the previous pair, waiting for the new model's index (the gallery's and the demo gallery's)
    expect(await served(a.client)).toMatchObject({ state: State.SERVING, model: demoModel, datasetVersion: v1, pending: { modelVersion: next, datasetVersion: v1 } });
    expect(builder.asked.map((p) => [p.model, p.dataset]).sort()).toEqual([[next, "flickr8k"], [next, "flickr8k-demo"]]);

    // a replica starting now (a rollout, an eviction) serves the previous production (the alias's `previous`)
    const b = await start(new RecordingBuilder());
    expect(await served(b.client)).toMatchObject({ state: State.SERVING, model: demoModel, datasetVersion: v1, pending: { modelVersion: next } });
    expect((await b.client.searchImages({ query: "people on a beach", topK: 3 })).modelVersion).toBe(demoModel);

    // the Job stores the gallery's index; the demo gallery's is still missing: no swap yet
    await runJob(store, { model: next, dataset: "flickr8k", datasetVersion: v1 });
    await a.server.manager.poke();
    expect((await served(a.client)).model).toBe(demoModel);
    const demo = builder.asked.find((p) => p.dataset === "flickr8k-demo")!;
    await runJob(store, demo);
    for (const { client } of [a, b]) {
      const s = await until("the replica to serve the promoted model", async () => {
        const x = await served(client);
        return x.model === next ? x : undefined;
      });
      expect(s).toMatchObject({ state: State.SERVING, datasetVersion: v1, images: 20 });
      expect(s.pending).toBeUndefined();
    }
  });

  it("an index build with index Jobs is the pair's Job: created on one replica, got and watched on another, not cancelled", { timeout: 300_000 }, async () => {
    const v1 = await publishDemoImages(store, "flickr8k", 20);
    const v2 = await publishDemoImages(store, "flickr8k", 24, 50);
    await runJob(store, { model: demoModel, dataset: "flickr8k", datasetVersion: v2 });
    const jobs: IndexPair[] = []; // the cluster's Jobs, seen by both replicas
    const [a, b] = [await start(new RecordingBuilder(jobs)), await start(new RecordingBuilder(jobs))];
    const write = { headers: { authorization: `Bearer ${TEST_WRITE_KEY}` } };
    const Build = ranking.IndexBuildState;
    const created = (await a.client.createIndexBuild({ indexBuild: { datasetVersion: v1 } }, write)).indexBuild!;
    expect(created).toMatchObject({ name: `indexBuilds/${demoModel}-${v1}`, state: Build.RUNNING, executor: "kubernetes" });
    await until("the Job to be asked for", async () => jobs.some((p) => p.datasetVersion === v1) || undefined);
    // the other replica follows the same Job
    expect((await b.client.getIndexBuild({ name: created.name })).indexBuild).toMatchObject({ state: Build.RUNNING, executor: "kubernetes", datasetVersion: v1 });
    expect((await b.client.getIndexBuild({ name: `indexBuilds/${demoModel}-0123456789abcdef` }).catch((e: unknown) => e)) as { code: number }).toMatchObject({ code: Code.NotFound });
    // a Job every replica shares is not cancelled
    const refused = (await a.client.cancelIndexBuild({ name: created.name }, write).catch((e: unknown) => e)) as { code: number; message: string };
    expect(refused).toMatchObject({ code: Code.FailedPrecondition, message: expect.stringContaining("not cancelled") });
    const ends = Promise.all([a, b].map(async ({ client }) => {
      let last: ranking.IndexBuild | undefined;
      for await (const m of client.watchIndexBuild({ name: created.name })) last = m.indexBuild;
      return last;
    }));
    await runJob(store, { model: demoModel, dataset: "flickr8k", datasetVersion: v1 });
    for (const last of await ends) expect(last).toMatchObject({ state: Build.SUCCEEDED, index: { datasetVersion: v1, images: 20n } });
    expect(jobs.filter((p) => p.datasetVersion === v1)).toHaveLength(1);
  });

  it("BuildIndex on a replica computes nothing itself: it asks for the pair's Job and streams it until the index is stored", { timeout: 300_000 }, async () => {
    const v1 = await publishDemoImages(store, "flickr8k", 20);
    await runJob(store, { model: demoModel, dataset: "flickr8k", datasetVersion: v1 });
    const builder = new RecordingBuilder();
    const { client } = await start(builder);
    const v2 = await publishDemoImages(store, "flickr8k", 24, 50);
    const stages: string[] = [];
    let last: ranking.BuildIndexResponse | undefined;
    let jobRan: Promise<void> | undefined;
    for await (const m of client.buildIndex({ datasetVersion: v2 }, { headers: { authorization: `Bearer ${TEST_WRITE_KEY}` } })) {
      stages.push(m.stage);
      last = m;
      // the stream follows the Job; here the test is the Job
      if (m.stage === "job" && !jobRan) {
        expect([Number(m.done), Number(m.total)]).toEqual([0, 2]);
        jobRan = runJob(store, { model: demoModel, dataset: "flickr8k", datasetVersion: v2 });
      }
    }
    await jobRan;
    expect(builder.asked).toContainEqual({ model: demoModel, dataset: "flickr8k", datasetVersion: v2 });
    expect(stages[0]).toBe("job");
    expect(stages.at(-1)).toBe("done");
    expect(stages.filter((x) => x !== "job" && x !== "done")).toEqual([]);
    expect(last!.index).toMatchObject({ modelVersion: demoModel, datasetVersion: v2, images: 24n, captions: 120n, kind: "exact" });
  });
});
