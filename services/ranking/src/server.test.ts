import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { health, LIMITS, ranking, rpcDetails } from "@glimpse/api";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { TEST_READ_KEY, TEST_WRITE_KEY, testConfig } from "@glimpse/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readIndexDocument } from "./index/store.js";
import { readAlias, writeAlias } from "./registry.js";
import { DEFAULT_DEMO_DIR, DEMO_DATASET, seedDemo } from "./seed.js";
import { build, type RankingServer } from "./server.js";
import { demoImageBias, failure, rankingClient, type RankingClient } from "./testing/harness.js";
import { pngBomb, testImage } from "./testing/images.js";

const State = ranking.ModelState;
const demoImages = readdirSync(join(DEFAULT_DEMO_DIR, "images")).sort();
const demoCaptions = JSON.parse(readFileSync(join(DEFAULT_DEMO_DIR, "captions.json"), "utf8")) as Record<string, string[]>;

describe("Ranking over real sockets, seeded from the demo pack", () => {
  const cfg = testConfig();
  let server: RankingServer;
  let client: RankingClient;

  beforeAll(async () => {
    server = await build(cfg, { port: 0 });
    client = rankingClient(server.url);
  });
  afterAll(() => server?.close(100));

  it("seeds an empty store, loads the production model and reports SERVING", async () => {
    const hc = createClient(health.Health, createGrpcTransport({ baseUrl: server.url }));
    expect((await hc.check({ service: ranking.RankingService.typeName })).status).toBe(health.HealthCheckResponse_ServingStatus.SERVING);
    const st = await client.getModelStatus({});
    expect(st.state).toBe(State.SERVING);
    expect(st.servingVersion).toMatch(/^m-[0-9a-f]{16}$/);
    expect(st.productionVersion).toBe(st.servingVersion);
    expect(st.index?.images).toBe(BigInt(demoImages.length));
    expect(st.index?.kind).toBe("exact");
    const info = await client.getModelInfo({});
    expect(info.model?.version).toBe(st.servingVersion);
    expect(info.model?.production).toBe(true);
    expect(info.model?.embeddingDim).toBe(256);
  });

  it("text→image: k hits, best first, with scores, captions, image URLs and both versions", async () => {
    const r = await client.searchImages({ query: "  a dog running on the grass  ", topK: 7 });
    const bias = await demoImageBias();
    expect(r.results).toHaveLength(7);
    expect(r.modelVersion).toMatch(/^m-/);
    expect(r.datasetVersion).toMatch(/^[0-9a-f]{16}$/);
    r.results.forEach((h, i) => {
      expect(h.rank).toBe(i + 1);
      expect(h.score).toBeGreaterThanOrEqual(-1);
      expect(h.score).toBeLessThanOrEqual(1);
      // rank order is cosine + the image's query-bank bias (proto ImageHit.score), best first
      if (i > 0) expect(h.score + bias.get(h.imageId)!).toBeLessThanOrEqual(r.results[i - 1]!.score + bias.get(r.results[i - 1]!.imageId)! + 1e-5);
      // rank_score is that sum, so a client can show the number the order follows
      expect(h.rankScore).toBeCloseTo(h.score + bias.get(h.imageId)!, 5);
      if (i > 0) expect(h.rankScore).toBeLessThanOrEqual(r.results[i - 1]!.rankScore + 1e-6);
      expect(h.captions).toEqual(demoCaptions[h.imageId]);
      expect(h.imageUrl).toBe(`/data/images/flickr8k-demo/${r.datasetVersion}/${h.imageId}`);
      expect(h.split).toBe(3); // the demo pack is test-split images
    });
    expect((await client.searchImages({ query: "a dog" })).results).toHaveLength(LIMITS.topKDefault);
    expect((await client.searchImages({ query: "a dog", scope: { split: 1 } })).results).toHaveLength(0); // no train images in the demo
    const scoped = await client.searchImages({ query: "a dog", scope: { datasetVersion: r.datasetVersion, split: 3 }, topK: 3 });
    expect(scoped.results.map((h) => h.imageId)).toEqual((await client.searchImages({ query: "a dog", topK: 3 })).results.map((h) => h.imageId));
  });

  it("image→text by gallery id and by bytes; upload → captions and similar images", async () => {
    // Not the first image: a row view of the index must be searched as itself.
    const id = demoImages[5]!.replace(/\.jpg$/, "");
    const byId = await client.searchCaptions({ image: { case: "imageId", value: id }, topK: 5 });
    expect(byId.results).toHaveLength(5);
    for (const c of byId.results) {
      expect(c.captionId).toMatch(new RegExp(`^${c.imageId}#\\d$`));
      expect(demoCaptions[c.imageId]![Number(c.captionId.split("#")[1])]).toBe(c.text);
    }
    // A trained model: most images find one of their own captions in their top 5.
    let own = 0;
    for (const f of demoImages.slice(0, 10)) {
      const img = f.replace(/\.jpg$/, "");
      const r = await client.searchCaptions({ image: { case: "imageId", value: img }, topK: 5 });
      if (r.results.some((c) => c.imageId === img)) own++;
    }
    expect(own).toBeGreaterThanOrEqual(5);
    const bytes = readFileSync(join(DEFAULT_DEMO_DIR, "images", demoImages[5]!));
    const byBytes = await client.searchCaptions({ image: { case: "imageBytes", value: bytes }, topK: 5 });
    // The stored embedding was computed from the same bytes.
    expect(byBytes.results.map((c) => c.captionId)).toEqual(byId.results.map((c) => c.captionId));
    expect(byBytes.results[0]!.score).toBeCloseTo(byId.results[0]!.score, 4);
    byBytes.results.forEach((c, i) => i > 0 && expect(c.rankScore).toBeLessThanOrEqual(byBytes.results[i - 1]!.rankScore + 1e-6));
    expect(byBytes.results.some((c) => Math.abs(c.rankScore - c.score) > 1e-4)).toBe(true); // the demo model ships a query bank

    const up = await client.rankUploadedImage({ image: await testImage(500, 375, "jpeg"), topKImages: 3 });
    expect([up.width, up.height]).toEqual([500, 375]);
    expect(up.captions).toHaveLength(LIMITS.captionsTopKDefault);
    expect(up.similarImages).toHaveLength(3);
    const same = await client.rankUploadedImage({ image: bytes, topKCaptions: 2, topKImages: 1 });
    expect(same.similarImages[0]!.imageId).toBe(id); // an image is most similar to itself
    expect(same.similarImages[0]!.score).toBeGreaterThan(0.999);
  });

  it("batch ranking and caller-given candidates agree with single searches", async () => {
    const queries = ["a dog in the snow", "a child on a swing", "a man climbing a rock"];
    const batch = await client.batchSearchImages({ queries, topK: 4 });
    expect(batch.results.map((r) => r.query)).toEqual(queries);
    for (const [i, q] of queries.entries()) {
      const single = await client.searchImages({ query: q, topK: 4 });
      expect(batch.results[i]!.results.map((h) => h.imageId)).toEqual(single.results.map((h) => h.imageId));
    }
    const top = await client.searchImages({ query: queries[0]!, topK: 20 });
    const cands = [...top.results].reverse().map((h) => h.imageId);
    const ranked = await client.rankCandidates({ query: { case: "text", value: queries[0]! }, candidateImageIds: cands });
    expect(ranked.results.map((c) => c.candidate)).toEqual(top.results.map((h) => h.imageId));
    expect(ranked.results[0]!.index).toBe(cands.length - 1);
    expect(ranked.results[0]!.score).toBeCloseTo(top.results[0]!.score, 5);
    const id = top.results[0]!.imageId;
    const texts = await client.rankCandidates({ query: { case: "imageId", value: id }, candidateTexts: ["a cat sleeping on a sofa", ...demoCaptions[id]!.slice(0, 1)] });
    expect(texts.results).toHaveLength(2);
    expect(texts.modelVersion).toBe(top.modelVersion);
  });

  it("demo search and demo queries", async () => {
    const q = await client.listDemoQueries({});
    expect(q.queries.length).toBeGreaterThan(3);
    const r = await client.demoSearch({ query: q.queries[0]! });
    expect(r.results).toHaveLength(LIMITS.demoTopKDefault);
    expect(r.query).toBe(q.queries[0]);
    expect(r.results[0]!.imageUrl).toMatch(/^\/data\/images\/flickr8k-demo\/[0-9a-f]{16}\//);
    const five = await client.demoSearch({ query: "a dog playing", topK: 5 });
    expect(five.results).toHaveLength(5);
  });

  it("answers bad input with clear codes and field violations, and keeps serving", async () => {
    const jpeg = await testImage(500, 375, "jpeg");
    const cases: [string, () => Promise<unknown>, Code, string, string][] = [
      ["empty query", () => client.searchImages({ query: "" }), Code.InvalidArgument, "query", "REQUIRED"],
      ["blank query", () => client.searchImages({ query: "   \n " }), Code.InvalidArgument, "query", "REQUIRED"],
      ["overlong query", () => client.searchImages({ query: "dog ".repeat(200) }), Code.InvalidArgument, "query", "TOO_LONG"],
      ["no words", () => client.demoSearch({ query: "?!…" }), Code.InvalidArgument, "query", "NO_WORDS"],
      ["top_k too big", () => client.searchImages({ query: "a dog", topK: 101 }), Code.InvalidArgument, "top_k", "OUT_OF_RANGE"],
      ["top_k negative", () => client.searchImages({ query: "a dog", topK: -1 }), Code.InvalidArgument, "top_k", "OUT_OF_RANGE"],
      ["demo top_k too big", () => client.demoSearch({ query: "a dog", topK: 51 }), Code.InvalidArgument, "top_k", "OUT_OF_RANGE"],
      ["non-image bytes", () => client.rankUploadedImage({ image: Buffer.from("GIF89a? no, just text pretending") }), Code.InvalidArgument, "image", "UNSUPPORTED_FORMAT"],
      ["truncated JPEG", () => client.rankUploadedImage({ image: jpeg.subarray(0, jpeg.length >> 1) }), Code.InvalidArgument, "image", "CORRUPT"],
      ["oversized upload", () => client.rankUploadedImage({ image: Buffer.alloc(LIMITS.imageMaxBytes + 1, 0xff) }), Code.InvalidArgument, "image", "TOO_LARGE"],
      ["decompression bomb", () => client.searchCaptions({ image: { case: "imageBytes", value: pngBomb() } }), Code.InvalidArgument, "image_bytes", "TOO_MANY_PIXELS"],
      ["empty upload", () => client.rankUploadedImage({}), Code.InvalidArgument, "image", "REQUIRED"],
      ["unknown gallery id", () => client.searchCaptions({ image: { case: "imageId", value: "no_such_image" } }), Code.NotFound, "image_id", "NOT_FOUND"],
      ["bad gallery id", () => client.searchCaptions({ image: { case: "imageId", value: "../etc/passwd" } }), Code.InvalidArgument, "image_id", "BAD_FORMAT"],
      ["no image", () => client.searchCaptions({}), Code.InvalidArgument, "image", "REQUIRED"],
      ["bad dataset version", () => client.searchImages({ query: "a dog", scope: { datasetVersion: "latest" } }), Code.InvalidArgument, "scope.dataset_version", "BAD_FORMAT"],
      ["unknown dataset version", () => client.searchImages({ query: "a dog", scope: { datasetVersion: "0123456789abcdef" } }), Code.NotFound, "scope.dataset_version", "NOT_FOUND"],
      ["bad split", () => client.searchImages({ query: "a dog", scope: { split: 9 as ranking.Scope["split"] } }), Code.InvalidArgument, "scope.split", "BAD_ENUM"],
      ["too many batch queries", () => client.batchSearchImages({ queries: Array.from({ length: 65 }, () => "a dog") }), Code.InvalidArgument, "queries", "TOO_MANY"],
      ["bad batch query", () => client.batchSearchImages({ queries: ["a dog", ""] }), Code.InvalidArgument, "queries[1]", "REQUIRED"],
      ["both candidate lists", () => client.rankCandidates({ query: { case: "text", value: "a dog" }, candidateImageIds: ["a"], candidateTexts: ["b"] }), Code.InvalidArgument, "candidate_texts", "EXCLUSIVE"],
      ["unknown candidate", () => client.rankCandidates({ query: { case: "text", value: "a dog" }, candidateImageIds: [demoImages[0]!.slice(0, -4), "nope"] }), Code.NotFound, "candidate_image_ids[1]", "NOT_FOUND"],
      ["promote a bad version id", () => client.promoteModel({ version: "v1" }, { headers: { authorization: `Bearer ${TEST_WRITE_KEY}` } }), Code.InvalidArgument, "version", "BAD_FORMAT"],
      ["promote an unknown version", () => client.promoteModel({ version: "m-0123456789abcdef" }, { headers: { authorization: `Bearer ${TEST_WRITE_KEY}` } }), Code.NotFound, "version", "NOT_FOUND"],
    ];
    for (const [name, call, code, field, reason] of cases) {
      const e = await failure(call());
      expect(Code[e.code], name).toBe(Code[code]);
      expect(e.violations.map((v) => `${v.field}:${v.reason}`), name).toContain(`${field}:${reason}`);
    }
    // All problems of a request at once.
    const many = await failure(client.searchImages({ query: "", topK: 1000, scope: { datasetVersion: "x" } }));
    expect(many.violations.map((v) => v.field).sort()).toEqual(["query", "scope.dataset_version", "top_k"]);
    expect((await client.searchImages({ query: "a dog", topK: 3 })).results).toHaveLength(3);
  });

  it("gives concurrent requests the same answers as sequential ones (micro-batching is transparent)", async () => {
    const queries = Array.from({ length: 32 }, (_, i) => `${["a dog", "a girl", "two men", "a bike"][i % 4]} ${["running", "on the beach", "in the snow", "jumping", "in a park", "with a ball", "near water", "in red"][i % 8]}`);
    const seq = [];
    for (const q of queries.slice(0, 8)) seq.push(await client.searchImages({ query: q, topK: 5 }));
    const runsBefore = server.manager.serving!.model.textBatcher.stats.runs;
    const par = await Promise.all(queries.map((q) => client.searchImages({ query: q, topK: 5 })));
    const runs = server.manager.serving!.model.textBatcher.stats.runs - runsBefore;
    expect(runs).toBeLessThan(32); // batched (cached queries do not run at all)
    seq.forEach((s, i) => {
      expect(par[i]!.results.map((h) => h.imageId)).toEqual(s.results.map((h) => h.imageId));
      par[i]!.results.forEach((h, j) => expect(h.score).toBeCloseTo(s.results[j]!.score, 5));
    });
  });

  it("answers its REST paths and Connect JSON over HTTP/1.1 itself, through the same checks (no gateway)", async () => {
    const post = async (path: string, body: string | Buffer, type: string, headers: Record<string, string> = {}) => {
      const r = await fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": type, ...headers }, body });
      return { status: r.status, json: (await r.json()) as Record<string, unknown> };
    };
    const viaGrpc = await client.searchImages({ query: "a dog running on the grass", topK: 5 });
    const rest = await post("/inference/text-to-image", JSON.stringify({ query: "a dog running on the grass", top_k: 5 }), "application/json");
    expect(rest.status).toBe(200);
    const hits = rest.json["results"] as { image_id: string; score: number; rank: number }[];
    expect(hits.map((h) => h.image_id)).toEqual(viaGrpc.results.map((h) => h.imageId));
    hits.forEach((h, i) => expect(h.score).toBeCloseTo(viaGrpc.results[i]!.score, 6));
    // Connect JSON, HTTP/1.1, on the gRPC port
    const connect = await post("/glimpse.ranking.v1.RankingService/SearchImages", JSON.stringify({ query: "a dog running on the grass", topK: 5 }), "application/json");
    expect(connect.status).toBe(200);
    expect((connect.json["results"] as { imageId: string }[]).map((h) => h.imageId)).toEqual(hits.map((h) => h.image_id));
    // an upload as raw bytes, as the gateway takes it
    const jpeg = readFileSync(join(DEFAULT_DEMO_DIR, "images", demoImages[0]!));
    const up = await post("/inference/upload-image?top_k_captions=3", jpeg, "image/jpeg");
    expect(up.status).toBe(200);
    expect(up.json["captions"]).toHaveLength(3);
    // bad input: 400 with the field named, as through the gateway
    const bad = await post("/inference/text-to-image", JSON.stringify({ query: "", top_k: 5000 }), "application/json");
    expect(bad.status).toBe(400);
    expect(bad.json["code"]).toBe("invalid_argument");
    const detail = (bad.json["details"] as { type: string; value: string }[]).find((d) => d.type === "google.rpc.BadRequest")!;
    const fields = fromBinary(rpcDetails.BadRequestSchema, Buffer.from(detail.value, "base64")).fieldViolations.map((v) => v.field).sort();
    expect(fields).toEqual(["query", "top_k"]);
    // the API keys hold: a write without one is refused, a read key cannot write
    expect((await post("/model/promote", JSON.stringify({ version: "m-0123456789abcdef" }), "application/json")).status).toBe(401);
    expect((await post("/model/promote", JSON.stringify({ version: "m-0123456789abcdef" }), "application/json", { authorization: `Bearer ${TEST_READ_KEY}` })).status).toBe(403);
    // only Ranking's own paths: another service's REST path is not served here
    expect((await fetch(`${server.url}/training/status`)).status).toBe(404);
  });

  it("lists registry versions and builds an index through the streaming RPC (write key required)", async () => {
    const versions = await client.listModelVersions({});
    expect(versions.models.length).toBeGreaterThanOrEqual(1);
    expect(versions.models.find((m) => m.production)?.version).toBe(server.manager.status().servingVersion);
    const denied = await failure((async () => {
      for await (const _ of client.buildIndex({})) void _;
    })());
    expect(denied.code).toBe(Code.Unauthenticated);
    const stages: string[] = [];
    let last: ranking.BuildIndexResponse | undefined;
    for await (const m of client.buildIndex({ force: true }, { headers: { authorization: `Bearer ${TEST_WRITE_KEY}` } })) {
      stages.push(m.stage);
      last = m;
    }
    expect(stages[0]).toBe("images");
    expect(stages).toContain("captions");
    expect(stages.at(-1)).toBe("done");
    expect(last?.index?.images).toBe(BigInt(demoImages.length));
    expect(last?.index?.captions).toBe(BigInt(Object.values(demoCaptions).flat().length));
    // Without force: the stored index is reused.
    const again = [];
    for await (const m of client.buildIndex({}, { headers: { authorization: `Bearer ${TEST_WRITE_KEY}` } })) again.push(m.stage);
    expect(again).toEqual(["done"]);
  });

  it("builds an index as a job resource: created, watched to the end, got by name, reused, cancelled", async () => {
    const write = { headers: { authorization: `Bearer ${TEST_WRITE_KEY}` } };
    const State = ranking.IndexBuildState;
    expect((await failure(client.createIndexBuild({ indexBuild: {} }))).code).toBe(Code.Unauthenticated);
    const started = (await client.createIndexBuild({ indexBuild: { force: true } }, write)).indexBuild!;
    expect(started.name).toMatch(new RegExp(`^indexBuilds/${server.manager.status().servingVersion}-[0-9a-f]{16}$`));
    expect([started.state, started.executor]).toEqual([State.RUNNING, "local"]);
    // It goes on without a watcher; a watch sees its stages, then the end.
    const stages: string[] = [];
    let last: ranking.IndexBuild | undefined;
    for await (const m of client.watchIndexBuild({ name: started.name })) {
      stages.push(m.indexBuild!.stage);
      last = m.indexBuild;
    }
    expect(stages).toContain("captions");
    expect(last?.state, last?.detail).toBe(State.SUCCEEDED);
    expect(last?.index?.images).toBe(BigInt(demoImages.length));
    expect(last?.endTime).toBeDefined();
    expect((await client.getIndexBuild({ name: started.name })).indexBuild).toEqual(last);
    // Without force the stored index is reused: the same name, at once SUCCEEDED.
    const again = (await client.createIndexBuild({ indexBuild: {} }, write)).indexBuild!;
    expect(again.name).toBe(started.name);
    const ends = [];
    for await (const m of client.watchIndexBuild({ name: again.name })) ends.push(m.indexBuild!.state);
    expect(ends.at(-1)).toBe(State.SUCCEEDED);
    // Cancelled while it computes: CANCELLED, the stored index as it was; cancelling again changes nothing.
    const doomed = (await client.createIndexBuild({ indexBuild: { force: true } }, write)).indexBuild!;
    const cancelled = (await client.cancelIndexBuild({ name: doomed.name }, write)).indexBuild!;
    expect(cancelled.state, cancelled.detail).toBe(State.CANCELLED);
    expect((await client.cancelIndexBuild({ name: doomed.name }, write)).indexBuild?.state).toBe(State.CANCELLED);
    const stored = (await readIndexDocument(server.store, last!.modelVersion, last!.dataset, last!.datasetVersion))!;
    expect([BigInt(stored.images.count), timestampDate(last!.index!.buildTime!).toISOString()]).toEqual([last!.index!.images, stored.built_at]);
    // What is not there: NOT_FOUND naming it; a bad name: INVALID_ARGUMENT.
    expect((await failure(client.getIndexBuild({ name: "indexBuilds/m-0123456789abcdef-0123456789abcdef" }))).code).toBe(Code.NotFound);
    expect((await failure(client.createIndexBuild({ indexBuild: { modelVersion: "m-0123456789abcdef" } }, write))).code).toBe(Code.NotFound);
    expect((await failure(client.getIndexBuild({ name: "indexBuilds/latest" }))).code).toBe(Code.InvalidArgument);
  });

  it("seeding is idempotent and never overwrites an existing production alias", async () => {
    const alias = await readAlias(server.store);
    const again = await seedDemo(server.store, DEFAULT_DEMO_DIR);
    expect(again).toMatchObject({ promoted: false, published: false, indexCopied: false, modelVersion: alias });
    await writeAlias(server.store, "m-ffffffffffffffff");
    expect((await seedDemo(server.store, DEFAULT_DEMO_DIR)).promoted).toBe(false);
    expect(await readAlias(server.store)).toBe("m-ffffffffffffffff");
    await writeAlias(server.store, alias!);
    expect((await server.store.stat(`datasets/${DEMO_DATASET}/latest.json`))?.size).toBeGreaterThan(0);
  });
});

describe("Ranking with no model", () => {
  it("is NOT_SERVING and answers UNAVAILABLE until a model is promoted, then serves", async () => {
    const cfg = testConfig();
    const server = await build(cfg, { port: 0, demoDir: null, pollMs: 200 });
    try {
      const client = rankingClient(server.url);
      const hc = createClient(health.Health, createGrpcTransport({ baseUrl: server.url }));
      expect((await hc.check({ service: ranking.RankingService.typeName })).status).toBe(health.HealthCheckResponse_ServingStatus.NOT_SERVING);
      expect((await client.getModelStatus({})).state).toBe(State.NO_MODEL);
      const e = await failure(client.searchImages({ query: "a dog" }));
      expect(e.code).toBe(Code.Unavailable);
      expect(e.reason).toBe("MODEL_NOT_LOADED");
      expect((await failure(client.getModelInfo({}))).code).toBe(Code.Unavailable);
      // Validation still comes first.
      expect((await failure(client.searchImages({ query: "" }))).code).toBe(Code.InvalidArgument);
      expect((await client.listDemoQueries({})).queries.length).toBeGreaterThan(0);
      // A model appears in the registry: the poll picks it up.
      await seedDemo(server.store, DEFAULT_DEMO_DIR);
      await server.manager.ready(60_000);
      expect((await hc.check({ service: ranking.RankingService.typeName })).status).toBe(health.HealthCheckResponse_ServingStatus.SERVING);
      expect((await client.searchImages({ query: "a dog", topK: 2 })).results).toHaveLength(2);
    } finally {
      await server.close(100);
    }
  });
});
