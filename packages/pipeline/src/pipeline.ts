import { mkdir } from "node:fs/promises";
import { resolve } from "node:path";
import { STEPS, StepReporter, type EventSink, type StepName, type StepStatus } from "./events.js";
import { IMAGE_FORMAT } from "./images.js";
import { manifestParams, resolveParams, type PipelineParams, type PipelineParamsInput } from "./params.js";
import type { PipelineOptions, StepContext } from "./steps/context.js";
import { downloadInputs, runDownload, type DownloadStepResult } from "./steps/download.js";
import { runExtract, type ExtractStepResult } from "./steps/extract.js";
import { processInputs, runProcess, type ProcessStepResult } from "./steps/process.js";
import { runSplit, splitInputs, type SplitStepResult } from "./steps/split.js";
import { noopSync, type PublishedVersion } from "./steps/sync.js";
import { runUpload, type UploadStepResult } from "./steps/upload.js";
import { runValidate, validateInputs, type ValidateStepResult } from "./steps/validate.js";
import { CancelledError, PipelineInputError, errorMessage } from "./util/errors.js";
import { canonicalJson, sha256Hex, writeJsonAtomic } from "./util/json.js";
import { WorkDir, inputKey, markerDigest, type StepMarker } from "./workdir.js";

type Markers = Partial<Record<StepName, StepMarker>>;

interface StepDef {
  name: StepName;
  unit: string;
  deps: StepName[];
  /** The parameters/options the step's output depends on (hashed into its input key). */
  inputs: (ctx: Omit<StepContext, "report">) => unknown;
  run: (ctx: StepContext, m: Markers, mode: "fresh" | "resume") => Promise<unknown>;
  summary: (result: never) => string;
  /** Always runs (its effect is outside the work dir): upload and sync. */
  always?: boolean;
}

const need = <R>(m: Markers, s: StepName): StepMarker<R> => m[s] as StepMarker<R>;

const DEFS: StepDef[] = [
  {
    name: "download",
    unit: "bytes",
    deps: [],
    inputs: downloadInputs,
    run: (ctx) => runDownload(ctx),
    summary: (r: DownloadStepResult) => r.sources.map((s) => `${s.name}: ${s.bytes} bytes, sha256 ${s.sha256.slice(0, 12)}…`).join("; "),
  },
  {
    name: "extract",
    unit: "files",
    deps: ["download"],
    inputs: () => ({}),
    run: (ctx, m, mode) => runExtract(ctx, need<DownloadStepResult>(m, "download"), mode === "fresh"),
    summary: (r: ExtractStepResult) => r.archives.map((a) => `${a.name}: ${a.files} files`).join("; "),
  },
  {
    name: "process",
    unit: "images",
    deps: ["extract"],
    inputs: processInputs,
    run: (ctx) => runProcess(ctx),
    summary: (r: ProcessStepResult) => `${r.processed} images (${r.rejected} rejected) of ${r.selected} selected, ${r.captions} captions`,
  },
  {
    name: "split",
    unit: "images",
    deps: ["process", "extract"],
    inputs: splitInputs,
    run: (ctx) => runSplit(ctx),
    summary: (r: SplitStepResult) => `train ${r.counts.train}, dev ${r.counts.dev}, test ${r.counts.test}, unsplit ${r.counts.unsplit}`,
  },
  {
    name: "validate",
    unit: "images",
    deps: ["process", "split"],
    inputs: validateInputs,
    run: (ctx) => runValidate(ctx),
    summary: (r: ValidateStepResult) => `ok: ${r.counts.images} images, ${r.counts.captions} captions, ${r.warnings} warning(s)`,
  },
  {
    name: "upload",
    unit: "objects",
    deps: ["download", "process", "split", "validate"],
    inputs: (ctx) => ({ dataset: ctx.params.dataset }),
    run: (ctx, m) =>
      runUpload(ctx, {
        download: need(m, "download"),
        process: need(m, "process"),
        split: need(m, "split"),
        validate: need(m, "validate"),
      }),
    summary: (r: UploadStepResult) =>
      `${r.published ? "published" : "already published:"} ${r.dataset} version ${r.version} (${r.uploaded} uploaded, ${r.existing} already there)`,
    always: true,
  },
  {
    name: "sync",
    unit: "steps",
    deps: ["upload"],
    inputs: () => ({}),
    run: async (ctx, m) => {
      const up = need<UploadStepResult>(m, "upload").result;
      const v: PublishedVersion = {
        dataset: up.dataset,
        version: up.version,
        manifestKey: up.manifestKey,
        publishedAt: up.publishedAt,
        latest: true,
        counts: up.counts,
        totalBytes: up.totalBytes,
        params: manifestParams(ctx.params),
      };
      await (ctx.options.sync ?? noopSync)(v, (msg) => ctx.report.log("info", msg));
      ctx.report.progress(1, 1);
      return { version: up.version };
    },
    summary: (r: { version: string }) => `announced version ${r.version}`,
    always: true,
  },
];

export interface PipelineResult {
  /** "skipped": finished, but nothing new was published (the version was already latest). */
  state: "succeeded" | "skipped";
  params: PipelineParams;
  dataset: string;
  version?: string;
  manifestKey?: string;
  published: boolean;
  steps: StepStatus[];
  /** Each step's result (also in <workDir>/<step>/.done.json). */
  results: Partial<Record<StepName, unknown>>;
}

/** A step failed; `cause` is the original error (ValidationError, TransientError, ...). */
export class StepFailedError extends Error {
  override readonly name = "StepFailedError";
  constructor(
    readonly step: StepName,
    cause: unknown,
    readonly steps: StepStatus[],
  ) {
    super(`${step} failed: ${errorMessage(cause)}`, { cause });
  }
}

/** The default work dir of a run: one per dataset and parameter set, so a rerun resumes. */
export function defaultWorkDir(params: PipelineParams, base = ".data/pipeline"): string {
  return resolve(base, `${params.dataset}-${sha256Hex(canonicalJson(params)).slice(0, 12)}`);
}

/** Runs the whole pipeline (download → … → sync), skipping steps finished in `workDir`. */
export function runPipeline(input: PipelineParamsInput, options: PipelineOptions): Promise<PipelineResult> {
  return runSteps(input, options, [...STEPS]);
}

/**
 * Runs the named steps in pipeline order. Steps they depend on that are not named must
 * have finished in `workDir` with the same inputs (single-step runs, as in an Argo DAG).
 * With `rerun`, the named steps run even when already done (keeping partial outputs of an
 * interrupted attempt: an image already processed is not processed again).
 */
export async function runSteps(input: PipelineParamsInput, options: PipelineOptions, steps: StepName[], { rerun = false }: { rerun?: boolean } = {}): Promise<PipelineResult> {
  const params = resolveParams(input);
  const sink: EventSink = options.onEvent ?? (() => {});
  const work = new WorkDir(resolve(options.workDir));
  await mkdir(work.root, { recursive: true });
  await writeJsonAtomic(`${work.root}/params.json`, params);
  const imageFormat = { ...IMAGE_FORMAT, ...options.imageFormat };
  const wanted = new Set(steps);
  const reporters = new Map<StepName, StepReporter>();
  for (const def of DEFS) if (wanted.has(def.name)) reporters.set(def.name, new StepReporter(def.name, sink, def.unit));
  for (const r of reporters.values()) sink({ type: "step", status: { ...r.status } });
  const statuses = (): StepStatus[] => [...reporters.values()].map((r) => ({ ...r.status }));

  const markers: Markers = {};
  const results: Partial<Record<StepName, unknown>> = {};
  const base = { params, options, work, imageFormat, ...(options.signal ? { signal: options.signal } : {}) };

  for (const def of DEFS) {
    const report = reporters.get(def.name);
    const inputs = inputKey({ step: def.name, inputs: def.inputs(base) });
    const missing = def.deps.filter((d) => !markers[d]);
    const prior = await work.marker(def.name);
    if (missing.length > 0) {
      // Its upstream outputs are not here (an Argo step gets only the folders it needs):
      // a finished step is accepted if it was made with the same parameters.
      if (!report && prior?.inputs === inputs) markers[def.name] = prior;
      if (!report) continue;
      const err = new PipelineInputError(`step ${def.name} needs the output of ${missing.join(", ")} in ${work.root} (with these parameters): run ${missing.length > 1 ? "them" : "it"} first`);
      report.finish("failed", err.message);
      throw new StepFailedError(def.name, err, statuses());
    }
    const upstream = Object.fromEntries(def.deps.map((d) => [d, markerDigest(markers[d] as StepMarker)]));
    const key = inputKey({ inputs, upstream });
    // Done earlier with the same inputs: reused — unless asked to run again, or it always runs
    // when asked (upload, sync). A step not asked for is reused even if it always runs: that is
    // how `sync` alone, after a run whose sync failed, finds the upload it announces.
    if (prior?.key === key && (!report || (!def.always && !rerun))) {
      markers[def.name] = prior;
      results[def.name] = prior.result;
      if (report) {
        report.start();
        report.finish("skipped", `done earlier: ${def.summary(prior.result as never)}`);
      }
      continue;
    }
    if (!report) continue; // not asked for and not done: steps after it that are asked for will say so
    if (options.signal?.aborted) {
      report.finish("cancelled", "cancelled");
      throw new StepFailedError(def.name, new CancelledError(), statuses());
    }
    const ctx: StepContext = { ...base, report };
    report.start();
    try {
      const mode = await work.begin(def.name, key);
      if (mode === "resume") report.log("info", `resuming an interrupted ${def.name} step`);
      const result = await def.run(ctx, markers, mode);
      markers[def.name] = await work.finish(def.name, key, result, { inputs, upstream });
      results[def.name] = result;
      const noop = def.name === "upload" && !(result as UploadStepResult).published && (result as UploadStepResult).uploaded === 0;
      report.finish(noop ? "skipped" : "succeeded", def.summary(result as never));
    } catch (err) {
      const cancelled = options.signal?.aborted || err instanceof CancelledError;
      report.finish(cancelled ? "cancelled" : "failed", errorMessage(err));
      throw new StepFailedError(def.name, cancelled ? new CancelledError() : err, statuses());
    }
  }

  const up = results.upload as UploadStepResult | undefined;
  const result: PipelineResult = {
    state: up && !up.published && up.uploaded === 0 ? "skipped" : "succeeded",
    params,
    dataset: params.dataset,
    published: up?.published ?? false,
    steps: statuses(),
    results,
  };
  if (up) {
    result.version = up.version;
    result.manifestKey = up.manifestKey;
  }
  return result;
}
