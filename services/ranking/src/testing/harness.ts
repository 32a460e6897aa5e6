/** Shared by the integration tests: a gRPC client, error inspection, a model variant maker. */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ranking, rpcDetails } from "@glimpse/api";
import type { ObjectStore } from "@glimpse/objectstore";
import { moveLatest } from "@glimpse/pipeline";
import { runShard } from "../index/shard.js";
import { indexPrefix } from "../index/store.js";
import type { BuildState, IndexBuilder, IndexPair } from "../lifecycle/index-builder.js";
import { LoadedModel } from "../model/model.js";
import { toF32 } from "../index/topk.js";
import { itemBias, parseQueryBank } from "../model/querybank.js";
import { datasetVersionOf, DEFAULT_DEMO_DIR, readDemoModel, uploadDataset } from "../seed.js";
import { fetchModel, HASHED_FILES, modelKey, readChecksums, versionOf } from "../registry.js";

export type RankingClient = Client<typeof ranking.RankingService>;

export function rankingClient(url: string): RankingClient {
  return createClient(ranking.RankingService, createGrpcTransport({ baseUrl: url }));
}

export interface CaughtError {
  code: Code;
  message: string;
  violations: { field: string; reason: string; description: string }[];
  reason: string | undefined;
}

/** The error a call fails with (and its google.rpc details), or throws if it succeeds. */
export async function failure(p: Promise<unknown>): Promise<CaughtError> {
  try {
    await p;
  } catch (err) {
    const e = ConnectError.from(err);
    const violations = e.findDetails(rpcDetails.BadRequestSchema).flatMap((b) => b.fieldViolations.map((v) => ({ field: v.field, reason: v.reason, description: v.description })));
    const info = e.findDetails(rpcDetails.ErrorInfoSchema)[0];
    return { code: e.code, message: e.rawMessage, violations, reason: info?.reason };
  }
  throw new Error("expected the call to fail");
}

export { fromBinary };

/**
 * Copies a registry version into a new one whose config.json differs (so the version id
 * differs) — same weights, same golden vectors. `tamper` may damage files afterwards to
 * make a bad version. Returns the new version id. Copies the indexes too (same embeddings).
 */
export async function variantOf(
  store: ObjectStore,
  base: string,
  label: string,
  tamper?: (files: Map<string, Buffer>) => { keepChecksums?: boolean } | void,
): Promise<string> {
  const sums = (await readChecksums(store, base))!;
  const files = new Map<string, Buffer>();
  for (const f of Object.keys(sums)) files.set(f, await store.getBuffer(modelKey(base, f)));
  const config = JSON.parse(files.get("config.json")!.toString("utf8")) as Record<string, unknown>;
  files.set("config.json", Buffer.from(`${JSON.stringify({ ...config, variant: label }, null, 2)}\n`));
  const version = versionOf(Object.fromEntries([...files].filter(([f]) => (HASHED_FILES as readonly string[]).includes(f))));
  const newSums: Record<string, string> = {};
  for (const [f, b] of files) newSums[f] = createHash("sha256").update(b).digest("hex");
  const t = tamper?.(files);
  const finalSums = t?.keepChecksums ? newSums : Object.fromEntries([...files].map(([f, b]) => [f, createHash("sha256").update(b).digest("hex")]));
  for (const [f, b] of files) await store.put(modelKey(version, f), b);
  await store.put(modelKey(version, "checksums.json"), JSON.stringify(finalSums));
  // Same weights: the base version's indexes hold the same embeddings.
  for await (const o of store.list(`models/${base}/indexes/`)) {
    const rel = o.key.slice(`models/${base}/`.length);
    let body = await store.getBuffer(o.key);
    if (rel.endsWith("index.json")) body = Buffer.from(JSON.stringify({ ...JSON.parse(body.toString("utf8")), model_version: version }));
    await store.put(`models/${version}/${rel}`, body);
  }
  return version;
}

export { indexPrefix };

/**
 * Each demo-pack image's query-bank bias (0 for all when the demo model ships no bank): searches
 * rank by cosine + this, so a test can check the rank order of the cosines it is given.
 */
export async function demoImageBias(demoDir = DEFAULT_DEMO_DIR): Promise<Map<string, number>> {
  const index = JSON.parse(readFileSync(join(demoDir, "index", "index.json"), "utf8")) as { dim: number; images: { ids: string[] } };
  const bank = parseQueryBank(Object.fromEntries(readDemoModel(demoDir)!.files), index.dim);
  const ids = index.images.ids;
  if (!bank) return new Map(ids.map((id) => [id, 0]));
  const bias = await itemBias(bank.captions, toF32(readFileSync(join(demoDir, "index", "images.f32"))), index.dim, bank.beta);
  return new Map(ids.map((id, i) => [id, bias[i]!]));
}

/**
 * Publishes `count` demo-pack images (from `offset`) as a new latest version of `dataset`, in the
 * pipeline's layout, as a pipeline run would; returns the version.
 */
export async function publishDemoImages(store: ObjectStore, dataset: string, count: number, offset = 0, demoDir = DEFAULT_DEMO_DIR): Promise<string> {
  const captions = JSON.parse(readFileSync(join(demoDir, "captions.json"), "utf8")) as Record<string, string[]>;
  const ids = readdirSync(join(demoDir, "images")).filter((f) => f.endsWith(".jpg")).sort().slice(offset, offset + count).map((f) => f.slice(0, -4));
  const images = new Map(ids.map((id) => [id, readFileSync(join(demoDir, "images", `${id}.jpg`))]));
  const ds = datasetVersionOf(dataset, images, captions, { train: [], dev: [], test: ids }, { source: "test", offset, count }, "file:demo/");
  await uploadDataset(store, ds);
  await moveLatest(store, dataset, ds.version);
  return ds.version;
}

/** A copy of a registry version that differs only in config.json, with no stored index: a freshly promoted model. */
export async function unindexedVariantOf(store: ObjectStore, base: string, label: string): Promise<string> {
  const version = await variantOf(store, base, label);
  for await (const o of store.list(`models/${version}/indexes/`)) await store.delete(o.key);
  return version;
}

/** Polls `fn` until it returns something (every 50 ms), or throws after `timeoutMs`. */
export async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** An index builder that records what it is asked and computes nothing (the test does, as a Job would). */
export class RecordingBuilder implements IndexBuilder {
  readonly kind = "kubernetes";
  /** Replicas of one cluster share it: the Jobs any of them asked for. */
  constructor(readonly asked: IndexPair[] = []) {}
  async ensure(pair: IndexPair): Promise<BuildState> {
    if (!this.asked.some((p) => JSON.stringify(p) === JSON.stringify(pair))) this.asked.push(pair);
    return this.state(pair);
  }
  async peek(pair: IndexPair): Promise<BuildState | undefined> {
    return this.asked.some((p) => JSON.stringify(p) === JSON.stringify(pair)) ? this.state(pair) : undefined;
  }
  private state(pair: IndexPair): BuildState {
    return { executor: "kubernetes", job: `job-${pair.datasetVersion}`, detail: "0/2 shards done, 2 running", failed: false, shards: 2, shardsDone: 0 };
  }
  async close(): Promise<void> {}
}

/** What an index Job's pods do: every shard worker of the pair, with the pair's model. */
export async function runIndexJob(store: ObjectStore, pair: IndexPair, shards = 2): Promise<void> {
  const f = await fetchModel(store, pair.model);
  const model = await LoadedModel.load(pair.model, f.files, { executionProvider: "cpu", intraOpThreads: 1, interOpThreads: 1 });
  try {
    for (let shard = 0; shard < shards; shard++) {
      await runShard({ store, modelVersion: pair.model, dataset: pair.dataset, datasetVersion: pair.datasetVersion, shard, shards, job: "test", worker: `pod-${shard}`, model: async () => model });
    }
  } finally {
    await model.release();
  }
}
