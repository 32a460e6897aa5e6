import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { Violations, data, invalidArgument, pageOfFixed, pageOfLive, dataset as ds, notFound, permissionDenied, type FieldViolation } from "@glimpse/api";
import { putJson, type ObjectStore } from "@glimpse/objectstore";
import { DEFAULTS, manifestKey, moveLatest, PublishConflictError, resolveParams, SourceRefusedError, type PublishedVersion, type SourceAllowList } from "@glimpse/pipeline";
import { Code, ConnectError } from "@connectrpc/connect";
import { DatasetCatalog, recordKey, type VersionRecord } from "./catalog.js";
import { PIPELINE_RUN_PREFIX, pipelineInput, type PipelineRuns } from "./runs.js";

/** The request's dataset and version: the proto's rules checked their shape; empty names the default dataset. */
function datasetAndVersion(req: { dataset: string; version: string }): { dataset: string; version: string } {
  return { dataset: req.dataset || DEFAULTS.dataset, version: req.version };
}

/**
 * An Argo run downloads in the workflow's pods, which see neither this service's files nor
 * the Data pod's: file:// archives are refused up front instead of failing in the cluster.
 */
function checkReachableFromWorkflow(v: Violations, p: data.PipelineParams | undefined, at: string): void {
  for (const [field, url] of [[`${at}.images_url`, p?.imagesUrl], [`${at}.captions_url`, p?.captionsUrl]] as const) {
    if (url?.startsWith("file://")) {
      v.add(field, "file:// URLs are not readable by the Argo workflow's pods (GLIMPSE_PIPELINE_EXECUTOR=argo): serve the archive over http(s)", "UNREACHABLE");
    }
  }
}

/**
 * The sources a run would read, against the allow-list, before it starts: PERMISSION_DENIED
 * naming each refused field (an empty URL is the default source, checked like any other).
 * The params have passed the proto's rules: they resolve as the run will resolve them.
 */
async function checkSourcesAllowed(allow: SourceAllowList, p: data.PipelineParams | undefined, at: string): Promise<void> {
  const refused: FieldViolation[] = [];
  const { imagesUrl, captionsUrl } = resolveParams(pipelineInput(p ?? create(data.PipelineParamsSchema)));
  for (const [field, url] of [[`${at}.images_url`, imagesUrl], [`${at}.captions_url`, captionsUrl]] as const) {
    try {
      await allow.check(url);
    } catch (err) {
      if (!(err instanceof SourceRefusedError)) throw err;
      refused.push({ field, description: err.message, reason: err.reason });
    }
  }
  if (refused.length > 0) throw permissionDenied(refused);
}

/** Records a published version; idempotent. The pipeline's sync step calls it. */
async function registerVersion(store: ObjectStore, catalog: DatasetCatalog, dataset: string, version: string, publishedAt?: string): Promise<void> {
  const existing = await catalog.record(dataset, version);
  if (existing) return;
  const record: VersionRecord = { dataset, version, published_at: publishedAt ?? new Date().toISOString() };
  await putJson(store, recordKey(dataset, version), record);
}

/** The run a request names: by name, or by the deprecated run_id (the rules require one, and agreeing). */
const runIdOf = (req: { name: string; runId: string }): string => (req.name ? req.name.slice(PIPELINE_RUN_PREFIX.length) : req.runId);

export function dataService(store: ObjectStore, catalog: DatasetCatalog, runs: PipelineRuns, allow: SourceAllowList): Partial<ServiceImpl<typeof data.DataService>> {
  /** Starts a run of these params; `at` is where the request carries them (violations name it). */
  async function startRun(params: data.PipelineParams | undefined, at: string): Promise<data.PipelineRun> {
    const v = new Violations();
    if (runs.executor === "argo") checkReachableFromWorkflow(v, params, at);
    v.throwIfAny();
    await checkSourcesAllowed(allow, params, at);
    return runs.start(params ?? create(data.PipelineParamsSchema));
  }

  return {
    async listDatasetVersions(req) {
      const dataset = req.dataset || DEFAULTS.dataset;
      const all = await catalog.versionsListed(dataset);
      const page = pageOfLive(all, req, data.ListDatasetVersionsRequestSchema, `ListDatasetVersions/${dataset}`, (x) => x.key, "descending");
      const versions = await Promise.all(page.items.map((x) => catalog.describe(dataset, x.version)));
      return create(data.ListDatasetVersionsResponseSchema, { versions, nextPageToken: page.nextPageToken });
    },

    async getDatasetInfo(req) {
      const { dataset, version } = datasetAndVersion(req);
      const resolved = await catalog.resolve(dataset, version);
      return create(data.GetDatasetInfoResponseSchema, { version: await catalog.describe(dataset, resolved) });
    },

    async listSamples(req) {
      const { dataset, version } = datasetAndVersion(req);
      const resolved = await catalog.resolve(dataset, version);
      const loaded = await catalog.load(dataset, resolved);
      const ids = req.split === ds.Split.UNSPECIFIED ? loaded.ids : loaded.ids.filter((id) => loaded.splitOf.get(id) === req.split);
      // Bound to the version it resolved, so a "latest" that moves between pages is noticed.
      const page = pageOfFixed(ids, req, data.ListSamplesRequestSchema, `ListSamples/${dataset}/${resolved}/${req.split}`);
      const samples = page.items.map((id) => {
        const ref = loaded.manifest.images[id]!;
        return create(ds.SampleSchema, {
          imageId: id,
          split: loaded.splitOf.get(id) ?? ds.Split.UNSPECIFIED,
          captions: loaded.captions[id] ?? [],
          width: ref.width,
          height: ref.height,
          sizeBytes: BigInt(ref.size),
          sha256: ref.sha256,
        });
      });
      return create(data.ListSamplesResponseSchema, {
        samples,
        version: resolved,
        totalSize: BigInt(ids.length),
        nextPageToken: page.nextPageToken,
      });
    },

    async getImage(req) {
      const { dataset, version } = datasetAndVersion(req);
      const resolved = await catalog.resolve(dataset, version);
      const loaded = await catalog.load(dataset, resolved);
      const img = await catalog.image(loaded, req.imageId);
      return create(data.GetImageResponseSchema, {
        data: img.data,
        contentType: "image/jpeg",
        sha256: img.sha256,
        width: img.width,
        height: img.height,
        version: resolved,
      });
    },

    async createPipelineRun(req) {
      if (!req.pipelineRun) throw invalidArgument([{ field: "pipeline_run", description: "is required", reason: "REQUIRED" }]);
      return create(data.CreatePipelineRunResponseSchema, { pipelineRun: await startRun(req.pipelineRun.params, "pipeline_run.params") });
    },

    async startPipelineRun(req) {
      return create(data.StartPipelineRunResponseSchema, { run: await startRun(req.params, "params") });
    },

    async getPipelineRun(req) {
      const run = await runs.get(runIdOf(req));
      return create(data.GetPipelineRunResponseSchema, { pipelineRun: run, run });
    },

    async listPipelineRuns(req) {
      const page = await runs.list(req);
      return create(data.ListPipelineRunsResponseSchema, { runs: page.items, nextPageToken: page.nextPageToken });
    },

    watchPipelineRun(req, ctx) {
      return runs.watch(runIdOf(req), ctx.signal);
    },

    async cancelPipelineRun(req) {
      const run = await runs.cancel(runIdOf(req));
      return create(data.CancelPipelineRunResponseSchema, { pipelineRun: run, run });
    },

    async registerDatasetVersion(req) {
      const dataset = req.dataset || DEFAULTS.dataset;
      const exists = await store.stat(manifestKey(dataset, req.version));
      if (!exists) throw notFound("dataset version", `${dataset}@${req.version}`, `no manifest for ${dataset}@${req.version} in the object store`);
      await catalog.load(dataset, req.version); // checks the manifest hashes to its version
      await registerVersion(store, catalog, dataset, req.version);
      if (req.markLatest) {
        try {
          await moveLatest(store, dataset, req.version);
        } catch (err) {
          if (err instanceof PublishConflictError) throw new ConnectError(err.message, Code.Aborted);
          throw err;
        }
      }
      return create(data.RegisterDatasetVersionResponseSchema, { version: await catalog.describe(dataset, req.version) });
    },
  };
}

/** The sync hook of runs this service executes: records the version directly. */
export function syncHook(store: ObjectStore, catalog: DatasetCatalog): (v: PublishedVersion) => Promise<void> {
  return (v) => registerVersion(store, catalog, v.dataset, v.version, v.publishedAt);
}
