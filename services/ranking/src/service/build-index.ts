/**
 * BuildIndex: the index job as a server stream. A stored index is reused (unless `force`).
 * With index Jobs (GLIMPSE_INDEX_EXECUTOR=kubernetes) a replica computes nothing itself: it asks
 * for the pair's Job and streams its shards ("job", done/total) until the index is stored.
 * Otherwise the job runs here, on the serving model's sessions when it is the version asked for,
 * else on a temporary load released at the end.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorWithReason, type ranking } from "@glimpse/api";
import type { ObjectStore } from "@glimpse/objectstore";
import { buildIndex, type BuildProgress } from "../index/build.js";
import type { GalleryIndex, IndexKindSetting } from "../index/gallery.js";
import { indexPrefix, loadIndex, readIndexDocument, saveIndex } from "../index/store.js";
import type { IndexBuilder, IndexPair } from "../lifecycle/index-builder.js";
import type { Snapshot } from "../lifecycle/snapshot.js";
import { LoadedModel } from "../model/model.js";
import { fetchModel, ModelRejectedError, readAlias } from "../registry.js";
import { indexInfo, indexInfoOf, notFoundField, type RankingImpl, type ServiceDeps } from "./shared.js";

export function buildIndexRpcs({ manager, store }: ServiceDeps): Pick<RankingImpl, "buildIndex"> {
  return {
    async *buildIndex(req, ctx) {
      const kind = (req.kind || "auto") as IndexKindSetting;
      const version = req.modelVersion || (await readAlias(store)) || "";
      if (!version) throw errorWithReason(Code.FailedPrecondition, "NO_MODEL", "no model_version given and no production model");
      let dataset: string;
      let datasetVersion: string;
      if (req.datasetVersion) {
        const d = await manager.findDataset(req.datasetVersion);
        if (!d) throw notFoundField("dataset_version", "dataset version", req.datasetVersion);
        dataset = d;
        datasetVersion = req.datasetVersion;
      } else {
        const g = await manager.gallery();
        if (!g) throw errorWithReason(Code.FailedPrecondition, "NO_DATASET", "no dataset version is published");
        ({ dataset, version: datasetVersion } = g);
      }
      if (!req.force && (await readIndexDocument(store, version, dataset, datasetVersion))) {
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
        yield* followIndexJob(manager.builder, store, { model: version, dataset, datasetVersion }, req.force, ctx.signal);
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
          if (err instanceof ModelRejectedError && /checksums.json is missing/.test(err.message)) throw notFoundField("model_version", "model version", version);
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
        signal: ctx.signal,
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
          if (ctx.signal.aborted) throw new ConnectError("index build cancelled", Code.Canceled);
          throw errorWithReason(Code.Internal, "INDEX_BUILD_FAILED", `index build failed: ${(failure as Error).message}`, { dataset, dataset_version: datasetVersion, model_version: version });
        }
        yield { stage: "done", done: 1n, total: 1n, index: indexInfo(result!) };
      } finally {
        await job;
        lease?.release();
        if (temporary) await model.release().catch(() => {});
      }
    },
  };
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
