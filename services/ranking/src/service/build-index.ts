/**
 * Index builds: CreateIndexBuild and the rest (the job resource, index-builds.ts), and the
 * deprecated BuildIndex, the same job as a server stream. A stored index is reused (unless `force`).
 * With index Jobs (GLIMPSE_INDEX_EXECUTOR=kubernetes) a replica computes nothing itself: it asks
 * for the pair's Job and streams its shards ("job", done/total) until the index is stored.
 * Otherwise the job runs here, on the serving model's sessions when it is the version asked for,
 * else on a temporary load released at the end.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorWithReason, invalidArgument, type ranking } from "@glimpse/api";
import type { ObjectStore } from "@glimpse/objectstore";
import { buildIndex, type BuildProgress } from "../index/build.js";
import type { GalleryIndex, IndexKindSetting } from "../index/gallery.js";
import { indexPrefix, loadIndex, readIndexDocument, saveIndex } from "../index/store.js";
import type { IndexBuilder, IndexPair } from "../lifecycle/index-builder.js";
import type { Snapshot } from "../lifecycle/snapshot.js";
import { LoadedModel } from "../model/model.js";
import { fetchModel, readAlias, readChecksums } from "../registry.js";
import { IndexBuilds } from "./index-builds.js";
import { indexInfo, indexInfoOf, notFoundField, type RankingImpl, type ServiceDeps } from "./shared.js";

export function buildIndexRpcs(deps: ServiceDeps): Pick<RankingImpl, "buildIndex" | "createIndexBuild" | "getIndexBuild" | "watchIndexBuild" | "cancelIndexBuild"> {
  const builds = new IndexBuilds(deps);
  return {
    async *buildIndex(req, ctx) {
      const pair = await resolvePair(deps, req.modelVersion, req.datasetVersion);
      yield* indexJob(deps, pair, (req.kind || "auto") as IndexKindSetting, req.force, ctx.signal);
    },
    async createIndexBuild(req) {
      if (!req.indexBuild) throw invalidArgument([{ field: "index_build", description: "is required", reason: "REQUIRED" }]);
      return { indexBuild: await builds.create(req.indexBuild) };
    },
    async getIndexBuild(req) {
      return { indexBuild: await builds.get(req.name) };
    },
    async *watchIndexBuild(req, ctx) {
      for await (const indexBuild of builds.watch(req.name, ctx.signal)) yield { indexBuild };
    },
    async cancelIndexBuild(req) {
      return { indexBuild: await builds.cancel(req.name) };
    },
  };
}

/** A (model version, dataset version) pair to index, resolved from a request. */
export interface ResolvedPair {
  version: string;
  dataset: string;
  datasetVersion: string;
}

/** The pair a request names: empty model = production, empty dataset version = the gallery's; NOT_FOUND for what is not there. */
export async function resolvePair({ manager, store }: ServiceDeps, modelVersion: string, datasetVersion: string): Promise<ResolvedPair> {
  const version = modelVersion || (await readAlias(store)) || "";
  if (!version) throw errorWithReason(Code.FailedPrecondition, "NO_MODEL", "no model_version given and no production model");
  if (!(await readChecksums(store, version))) throw notFoundField("model_version", "model version", version, "the registry");
  if (datasetVersion) {
    const dataset = await manager.findDataset(datasetVersion);
    if (!dataset) throw notFoundField("dataset_version", "dataset version", datasetVersion);
    return { version, dataset, datasetVersion };
  }
  const g = await manager.gallery();
  if (!g) throw errorWithReason(Code.FailedPrecondition, "NO_DATASET", "no dataset version is published");
  return { version, dataset: g.dataset, datasetVersion: g.version };
}

/**
 * The index job of a pair, as progress messages ending with "done" and the index; `signal`
 * cancels a local computation (an index Job goes on: only the following stops).
 */
export async function* indexJob({ manager, store }: ServiceDeps, pair: ResolvedPair, kind: IndexKindSetting, force: boolean, signal: AbortSignal): AsyncGenerator<MessageInitShape<typeof ranking.BuildIndexResponseSchema>> {
  const { version, dataset, datasetVersion } = pair;
  if (!force && (await readIndexDocument(store, version, dataset, datasetVersion))) {
    const loaded = await loadIndex(store, version, dataset, datasetVersion, kind);
    if (loaded) {
      if (loaded.graphBuilt) {
        yield { stage: "upload", done: 0n, total: 1n };
        await saveIndex(store, loaded.index);
      }
      yield { stage: "done", done: 1n, total: 1n, index: indexInfo(loaded.index) };
      return;
    }
  }
  if (manager.builder.kind === "kubernetes") {
    yield* followIndexJob(manager.builder, store, { model: version, dataset, datasetVersion }, force, signal);
    return;
  }
  // The serving model's sessions when it is the one asked for, else a temporary load.
  const serving = manager.serving;
  let lease: Snapshot | undefined;
  let model: LoadedModel;
  let temporary = false;
  if (serving && serving.model.version === version) {
    lease = manager.acquire();
    model = lease.model;
  } else {
    try {
      const f = await fetchModel(store, version);
      model = await LoadedModel.load(version, f.files, manager.opts.model);
      temporary = true;
    } catch (err) {
      // (a version missing from the registry was NOT_FOUND in resolvePair)
      throw errorWithReason(Code.FailedPrecondition, "MODEL_REJECTED", (err as Error).message, { model_version: version });
    }
  }
  const queue: BuildProgress[] = [];
  let wake: (() => void) | undefined;
  let finished = false;
  let failure: unknown;
  let result: GalleryIndex | undefined;
  const job = buildIndex({
    store,
    model,
    dataset,
    datasetVersion,
    kind,
    signal,
    onProgress: (p) => {
      // Keep the stream short: coalesce to the latest progress of a stage.
      const last = queue[queue.length - 1];
      if (last && last.stage === p.stage && p.stage !== "done") queue[queue.length - 1] = p;
      else queue.push(p);
      wake?.();
    },
  }).then(
    (r) => {
      result = r.index;
    },
    (err: unknown) => {
      failure = err;
    },
  );
  void job.finally(() => {
    finished = true;
    wake?.();
  });
  try {
    for (;;) {
      while (queue.length > 0) {
        const p = queue.shift()!;
        if (p.stage === "done") continue;
        yield { stage: p.stage, done: BigInt(p.done), total: BigInt(p.total) };
      }
      if (finished) break;
      await new Promise<void>((r) => (wake = r));
      wake = undefined;
    }
    if (failure) {
      if (signal.aborted) throw new ConnectError("index build cancelled", Code.Canceled);
      throw errorWithReason(Code.Internal, "INDEX_BUILD_FAILED", `index build failed: ${(failure as Error).message}`, { dataset, dataset_version: datasetVersion, model_version: version });
    }
    yield { stage: "done", done: 1n, total: 1n, index: indexInfo(result!) };
  } finally {
    await job;
    lease?.release();
    if (temporary) await model.release().catch(() => {});
  }
}

/** Asks for the pair's index Job and follows it until the index is stored (`force`: the stored one is removed first). */
async function* followIndexJob(builder: IndexBuilder, store: ObjectStore, pair: IndexPair, force: boolean, signal: AbortSignal): AsyncGenerator<MessageInitShape<typeof ranking.BuildIndexResponseSchema>> {
  const prefix = indexPrefix(pair.model, pair.dataset, pair.datasetVersion);
  if (force) await store.delete(`${prefix}index.json`);
  for (;;) {
    const doc = await readIndexDocument(store, pair.model, pair.dataset, pair.datasetVersion);
    if (doc) {
      yield { stage: "done", done: 1n, total: 1n, index: indexInfoOf(doc) };
      return;
    }
    const st = await builder.ensure(pair);
    if (st.failed) throw errorWithReason(Code.Internal, "INDEX_BUILD_FAILED", `index Job ${st.job} ${st.detail}`, { dataset: pair.dataset, dataset_version: pair.datasetVersion, model_version: pair.model, job: st.job });
    yield { stage: "job", done: BigInt(st.shardsDone ?? 0), total: BigInt(st.shards ?? 0) };
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(resolve, JOB_POLL_MS);
      signal.addEventListener("abort", () => {
        clearTimeout(t);
        reject(new ConnectError("stopped following the index Job (it goes on)", Code.Canceled));
      }, { once: true });
    });
  }
}

/** How often a BuildIndex stream looks at the Job it follows. */
const JOB_POLL_MS = 1000;
