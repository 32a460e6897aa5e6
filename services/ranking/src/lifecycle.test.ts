import { Code } from "@connectrpc/connect";
import { health, ranking } from "@glimpse/api";
import { createObjectStore, type ObjectStore } from "@glimpse/objectstore";
import { startMinio, type MinioServer } from "@glimpse/objectstore/testing";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { TEST_WRITE_KEY, testConfig } from "@glimpse/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Golden } from "./model/golden.js";
import { writeAlias } from "./registry.js";
import { DEFAULT_DEMO_DIR, seedDemo } from "./seed.js";
import { build, type RankingServer } from "./server.js";
import { failure, rankingClient, variantOf, type RankingClient } from "./testing/harness.js";
import { testImage } from "./testing/images.js";

const State = ranking.ModelState;
const WRITE = { headers: { authorization: `Bearer ${TEST_WRITE_KEY}` } };

async function until(cond: () => Promise<boolean> | boolean, timeoutMs = 60_000, what = "condition"): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("model lifecycle against a real MinIO", () => {
  let minio: MinioServer;
  let store: ObjectStore;
  let server: RankingServer;
  let client: RankingClient;

  beforeAll(async () => {
    minio = await startMinio();
    store = createObjectStore({ kind: "minio", endpoint: minio.endpoint, accessKey: minio.accessKey, secretKey: minio.secretKey, bucket: "glimpse" });
    await store.init();
    server = await build(testConfig(), { port: 0, store, pollMs: 250 });
    client = rankingClient(server.url);
  });
  afterAll(async () => {
    await server?.close(100);
    await minio?.stop();
  });

  /** Four clients searching until stopped; each records the versions that answered it, in order, and every error. */
  function searchLoad(query: string): { seen: string[][]; errors: string[]; stop: () => Promise<void>; everyClientOn: (v: string) => () => boolean } {
    let stopped = false;
    const errors: string[] = [];
    const seen: string[][] = [];
    const worker = async (w: number) => {
      const versions: string[] = [];
      seen.push(versions);
      for (let i = 0; !stopped; i++) {
        try {
          const r = await client.searchImages({ query: `${query} ${w} ${i % 7}`, topK: 3 });
          if (versions.at(-1) !== r.modelVersion) versions.push(r.modelVersion);
        } catch (err) {
          errors.push((err as Error).message);
        }
      }
    };
    const load = Promise.all([0, 1, 2, 3].map(worker));
    const everyClientOn = (v: string) => () => seen.length === 4 && seen.every((s) => s.at(-1) === v);
    return { seen, errors, stop: async () => { stopped = true; await load; }, everyClientOn };
  }

  it("swaps to a promoted version under load with no failed request; in-flight requests finish on the old one", async () => {
    const a = server.manager.status().servingVersion;
    expect(a).toMatch(/^m-/);
    const b = await variantOf(store, a, "b");
    const held = server.manager.acquire(); // an in-flight request on version a
    const { seen, errors, stop, everyClientOn } = searchLoad("a dog number");
    await until(everyClientOn(a), 10_000, "every client to search");
    const promoted = await client.promoteModel({ version: b }, WRITE);
    expect(promoted.model?.version).toBe(b);
    expect(promoted.model?.production).toBe(true);
    await until(() => server.manager.status().servingVersion === b, 60_000, "the swap");
    await until(everyClientOn(b), 10_000, "every client to be served by B");
    await stop();
    expect(errors).toEqual([]);
    for (const v of seen) expect(v).toEqual([a, b]); // each client: a until the swap, then b
    // The request that started on a still runs on a's sessions after the swap...
    expect(held.model.version).toBe(a);
    expect((await held.model.embedTexts(["still here"])).length).toBe(256);
    // ...which are released when it ends.
    held.release();
    await until(() => held.model.embedTexts(["x"]).then(() => false, () => true), 5_000, "the old sessions to be released");
    const st = await client.getModelStatus({});
    expect([st.state, st.servingVersion, st.productionVersion, st.lastError]).toEqual([State.SERVING, b, b, ""]);
  });

  it("rolls back through PromoteModel: B promoted, then back to the earlier A, under load with no failed request", async () => {
    const a = server.manager.status().servingVersion; // registered and served earlier
    const b = await variantOf(store, a, "rollback-b");
    const { seen, errors, stop, everyClientOn } = searchLoad("children on a beach");
    await until(everyClientOn(a), 10_000, "every client to search");
    expect((await client.promoteModel({ version: b }, WRITE)).model?.version).toBe(b);
    await until(everyClientOn(b), 60_000, "every client to be served by B");
    // The rollback: the earlier version by PromoteModel, like any promotion.
    const back = await client.promoteModel({ version: a }, WRITE);
    expect([back.model?.version, back.model?.production]).toEqual([a, true]);
    await until(everyClientOn(a), 60_000, "every client to be served by A again");
    await stop();
    expect(errors).toEqual([]);
    for (const v of seen) expect(v).toEqual([a, b, a]);
    expect((await client.searchImages({ query: "a dog", topK: 1 })).modelVersion).toBe(a);
    const st = await client.getModelStatus({});
    expect([st.state, st.servingVersion, st.productionVersion, st.lastError]).toEqual([State.SERVING, a, a, ""]);
  });

  it("refuses bad versions (checksum, version id, golden vectors), keeps serving, says why", async () => {
    const b = server.manager.status().servingVersion;
    const corrupt = await variantOf(store, b, "corrupt", (files) => {
      files.get("text_encoder.onnx")![200]! ^= 0xff;
      return { keepChecksums: true };
    });
    const wrongId = await variantOf(store, b, "wrong-id", (files) => {
      files.set("vocab.json", Buffer.concat([files.get("vocab.json")!, Buffer.from(" ")]));
    });
    const badGolden = await variantOf(store, b, "bad-golden", (files) => {
      const g = JSON.parse(files.get("golden.json")!.toString("utf8")) as Golden;
      g.captions[0]!.embedding[0]! += 0.01;
      files.set("golden.json", Buffer.from(JSON.stringify(g)));
    });
    for (const [version, why] of [
      [corrupt, /checksum mismatch for text_encoder\.onnx/],
      [wrongId, /files define version/],
      [badGolden, /golden/],
    ] as const) {
      await client.promoteModel({ version }, WRITE);
      await until(() => server.manager.status().lastError.startsWith(version), 60_000, `${version} to be refused`);
      const st = await client.getModelStatus({});
      expect(st.lastError).toMatch(why);
      expect(st.lastError).toContain("refused");
      expect([st.state, st.servingVersion, st.productionVersion]).toEqual([State.SERVING, b, version]);
      expect((await client.searchImages({ query: "a dog", topK: 2 })).modelVersion).toBe(b);
    }
    // Back to the good version: the refusal no longer matters.
    await client.promoteModel({ version: b }, WRITE);
    await until(async () => (await client.getModelStatus({})).lastError === "", 10_000, "the error to clear");
  });

  it("keeps serving from memory while the object store is down", async () => {
    const serving = server.manager.status().servingVersion;
    await minio.stop();
    await until(() => server.manager.registryUnreachable, 30_000, "a failed registry check");
    const hc = createClient(health.Health, createGrpcTransport({ baseUrl: server.url }));
    expect((await hc.check({ service: ranking.RankingService.typeName })).status).toBe(health.HealthCheckResponse_ServingStatus.SERVING);
    expect((await client.searchImages({ query: "children on a beach", topK: 4 })).results).toHaveLength(4);
    expect((await client.demoSearch({ query: "a dog" })).modelVersion).toBe(serving);
    expect((await client.rankUploadedImage({ image: await testImage(500, 375) })).captions).toHaveLength(5);
    expect((await client.getModelInfo({})).model?.version).toBe(serving);
    expect((await client.getModelStatus({})).state).toBe(State.SERVING);
    // Registry writes need the store: a clear, retryable error.
    const e = await failure(client.promoteModel({ version: serving }, WRITE));
    expect(e.code).toBe(Code.Unavailable);
  });
});

describe("a bad first version", () => {
  it("reports FAILED, stays NOT_SERVING, and serves once a good version is promoted", async () => {
    const cfg = testConfig();
    const seeder = await build(cfg, { port: 0, readyTimeoutMs: 120_000 });
    const good = seeder.manager.status().servingVersion;
    const store = seeder.store;
    await seeder.close(100);
    const bad = await variantOf(store, good, "bad-first", (files) => {
      files.get("image_encoder.onnx")![300]! ^= 0xff;
      return { keepChecksums: true };
    });
    await writeAlias(store, bad);
    const server = await build(cfg, { port: 0, store, demoDir: null, pollMs: 200 });
    try {
      const client = rankingClient(server.url);
      const st = await client.getModelStatus({});
      expect(st.state).toBe(State.FAILED);
      expect(st.lastError).toMatch(/checksum mismatch for image_encoder\.onnx/);
      const hc = createClient(health.Health, createGrpcTransport({ baseUrl: server.url }));
      expect((await hc.check({ service: ranking.RankingService.typeName })).status).toBe(health.HealthCheckResponse_ServingStatus.NOT_SERVING);
      const e = await failure(client.searchImages({ query: "a dog" }));
      expect([e.code, e.reason]).toEqual([Code.Unavailable, "MODEL_NOT_LOADED"]);
      expect(e.message).toMatch(/failed to load/);
      await writeAlias(store, good);
      await server.manager.ready(60_000);
      expect((await client.searchImages({ query: "a dog", topK: 1 })).modelVersion).toBe(good);
      expect((await seedDemo(store, DEFAULT_DEMO_DIR)).promoted).toBe(false);
    } finally {
      await server.close(100);
    }
  });
});
