import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { create, fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { data, notFound, pageOfLive, type ListRequest, type Page } from "@glimpse/api";
import type { Logger } from "@glimpse/logging";
import { getJson, putJson, type ObjectStore } from "@glimpse/objectstore";
import {
  PROTO_RUN_STATE,
  PROTO_STEP,
  STEPS,
  runPipeline,
  type PipelineEvent,
  type PipelineParamsInput,
  type PublishedVersion,
  type SourceAllowList,
} from "@glimpse/pipeline";
import { Subscription } from "@glimpse/rpc";
import { applyWorkflowStatus, type ArgoClient } from "./argo.js";

const RUNS_PREFIX = "data/pipeline-runs/";
const runKey = (id: string) => `${RUNS_PREFIX}${id}.json`;
const FINISHED = new Set([data.RunState.SUCCEEDED, data.RunState.FAILED, data.RunState.CANCELLED, data.RunState.SKIPPED]);

export interface RunsOptions {
  store: ObjectStore;
  logger: Logger;
  /** Where local runs keep their work folders (restartable). */
  workRoot: string;
  /** Records a version the run published (the sync step). */
  register: (v: PublishedVersion) => Promise<void>;
  /** Run as Argo Workflows instead of in this process. */
  argo?: ArgoClient | undefined;
  /** How often an Argo run's status is read (ms). */
  pollMs?: number;
  /** Where a local run's download step may fetch from (checked again on every connection and redirect). */
  allow: SourceAllowList;
}

/** The proto's params as the pipeline package's input (enums as words, bigints as numbers). */
export function pipelineInput(p: data.PipelineParams): PipelineParamsInput {
  return {
    dataset: p.dataset,
    imagesUrl: p.imagesUrl,
    captionsUrl: p.captionsUrl,
    imagesSha256: p.imagesSha256 || undefined,
    captionsSha256: p.captionsSha256 || undefined,
    datasetSize: p.datasetSize === data.DatasetSize.SAMPLE ? "sample" : p.datasetSize === data.DatasetSize.FULL ? "full" : undefined,
    sampleRatio: p.sampleRatio || undefined,
    splitMode: p.splitMode === data.SplitMode.RATIO ? "ratio" : p.splitMode === data.SplitMode.OFFICIAL ? "official" : undefined,
    trainRatio: p.trainRatio || undefined,
    devRatio: p.devRatio || undefined,
    testRatio: p.testRatio || undefined,
    seed: p.seed ? Number(p.seed) : undefined,
  };
}

interface Live {
  run: data.PipelineRun;
  abort: AbortController;
  listeners: Set<(change: data.WatchPipelineRunResponse) => void>;
  lastSave: number;
}

/**
 * Pipeline runs of the embedded default: executed in this process with the same step code
 * the CLI and the Argo steps run, persisted in the object store so history survives
 * restarts, and streamed to watchers step by step.
 */
export class PipelineRuns {
  private readonly live = new Map<string, Live>();

  constructor(private readonly opts: RunsOptions) {}

  /** Where runs execute: in this process, or as Argo Workflows. */
  get executor(): "local" | "argo" {
    return this.opts.argo ? "argo" : "local";
  }

  /** A local run left RUNNING by a previous process can't be resumed from here: mark it failed. */
  async init(): Promise<void> {
    for await (const info of this.opts.store.list(RUNS_PREFIX)) {
      const run = await this.read(info.key);
      if (run.executor === "argo" && this.opts.argo && !FINISHED.has(run.state)) {
        // The workflow runs on in the cluster: follow it again.
        const live: Live = { run, abort: new AbortController(), listeners: new Set(), lastSave: 0 };
        this.live.set(run.runId, live);
        void this.follow(live);
      } else if (!FINISHED.has(run.state)) {
        run.state = data.RunState.FAILED;
        run.error = "the Data service restarted while this run was in progress; start it again (finished steps are reused)";
        run.finishedAt = timestampFromDate(new Date());
        await this.save(run);
      }
    }
  }

  async start(params: data.PipelineParams): Promise<data.PipelineRun> {
    const dataset = params.dataset || "flickr8k";
    for (const l of this.live.values()) {
      if ((l.run.params?.dataset || "flickr8k") === dataset && !FINISHED.has(l.run.state)) {
        throw new ConnectError(`run ${l.run.runId} is already building ${dataset}; watch it or cancel it first`, Code.FailedPrecondition);
      }
    }
    const now = new Date();
    const runId = `pr-${now.toISOString().replace(/[-:T.Z]/g, "").slice(0, 14)}-${randomBytes(3).toString("hex")}`;
    const run = create(data.PipelineRunSchema, {
      runId,
      params,
      state: data.RunState.PENDING,
      executor: this.opts.argo ? "argo" : "local",
      createdAt: timestampFromDate(now),
      steps: STEPS.map((s) => create(data.StepStatusSchema, { step: PROTO_STEP[s], state: data.RunState.PENDING })),
    });
    const live: Live = { run, abort: new AbortController(), listeners: new Set(), lastSave: 0 };
    this.live.set(runId, live);
    await this.save(run);
    void this.execute(live);
    return snapshot(run);
  }

  private async execute(live: Live): Promise<void> {
    if (this.opts.argo) {
      try {
        live.run.workflowName = await this.opts.argo.submit(live.run.runId, pipelineInput(live.run.params ?? create(data.PipelineParamsSchema)));
      } catch (err) {
        live.run.state = data.RunState.FAILED;
        live.run.error = `could not submit the Argo Workflow: ${err instanceof Error ? err.message : String(err)}`;
        live.run.finishedAt = timestampFromDate(new Date());
        this.changed(live, data.PipelineStep.UNSPECIFIED, live.run.error, true);
        return;
      }
      return this.follow(live);
    }
    const { run } = live;
    run.state = data.RunState.RUNNING;
    this.changed(live, data.PipelineStep.UNSPECIFIED, "started", true);
    try {
      const result = await runPipeline(pipelineInput(run.params ?? create(data.PipelineParamsSchema)), {
        store: this.opts.store,
        workDir: join(this.opts.workRoot, run.runId),
        signal: live.abort.signal,
        download: { allow: this.opts.allow },
        onEvent: (e) => this.onEvent(live, e),
        sync: async (v, log) => {
          await this.opts.register(v);
          log(`registered ${v.dataset}@${v.version} with the Data service`);
        },
      });
      run.datasetVersion = result.version ?? "";
      // "skipped": nothing new to publish — the same inputs already are the latest version.
      run.state = result.state === "skipped" ? data.RunState.SKIPPED : data.RunState.SUCCEEDED;
    } catch (err) {
      run.state = live.abort.signal.aborted ? data.RunState.CANCELLED : data.RunState.FAILED;
      run.error = err instanceof Error ? err.message : String(err);
      this.opts.logger.warn({ runId: run.runId, err: run.error }, "pipeline run failed");
    }
    run.finishedAt = timestampFromDate(new Date());
    this.changed(live, data.PipelineStep.UNSPECIFIED, run.error || "finished", true);
  }

  /** Polls an Argo run until it ends; a cancel terminates the workflow. */
  private async follow(live: Live): Promise<void> {
    const argo = this.opts.argo!;
    const name = live.run.workflowName;
    let terminated = false;
    while (!FINISHED.has(live.run.state)) {
      if (live.abort.signal.aborted && !terminated) {
        // Tried again at every poll until it goes through (API server unreachable, RBAC).
        try {
          await argo.terminate(name);
          terminated = true;
        } catch (err) {
          this.opts.logger.warn({ err: String(err), workflow: name }, "could not terminate workflow; retrying");
        }
      }
      try {
        const before = JSON.stringify(toJson(data.PipelineRunSchema, live.run));
        applyWorkflowStatus(live.run, await argo.status(name));
        if (terminated && FINISHED.has(live.run.state)) live.run.state = data.RunState.CANCELLED;
        if (JSON.stringify(toJson(data.PipelineRunSchema, live.run)) !== before) this.changed(live, data.PipelineStep.UNSPECIFIED, "workflow status", true);
      } catch (err) {
        this.opts.logger.warn({ err: String(err), workflow: name }, "could not read workflow status");
      }
      if (!FINISHED.has(live.run.state)) await new Promise((r) => setTimeout(r, this.opts.pollMs ?? 3_000));
    }
  }

  private onEvent(live: Live, e: PipelineEvent): void {
    if (e.type === "log") {
      if (e.level !== "debug") this.opts.logger.info({ runId: live.run.runId, step: e.step }, e.message);
      return;
    }
    const s = e.status;
    const step = live.run.steps.find((x) => x.step === PROTO_STEP[s.step]);
    if (!step) return;
    const stateChanged = step.state !== PROTO_RUN_STATE[s.state];
    step.state = PROTO_RUN_STATE[s.state];
    step.done = BigInt(Math.round(s.done));
    step.total = BigInt(Math.round(s.total));
    step.unit = s.unit;
    step.message = s.message;
    if (s.startedAt) step.startedAt = timestampFromDate(s.startedAt);
    if (s.finishedAt) step.finishedAt = timestampFromDate(s.finishedAt);
    this.changed(live, step.step, s.message, stateChanged);
  }

  /** Tells watchers; persists state changes at once and progress at most every 2 s. */
  private changed(live: Live, step: data.PipelineStep, message: string, important: boolean): void {
    const run = snapshot(live.run);
    const change = create(data.WatchPipelineRunResponseSchema, { pipelineRun: run, run, step, message });
    for (const l of live.listeners) l(change);
    const now = Date.now();
    if (important || now - live.lastSave > 2_000) {
      live.lastSave = now;
      this.save(live.run).catch((err: unknown) => this.opts.logger.warn({ err: String(err) }, "could not persist pipeline run"));
    }
  }

  async get(runId: string): Promise<data.PipelineRun> {
    const live = this.live.get(runId);
    if (live) return snapshot(live.run);
    try {
      return snapshot(await this.read(runKey(runId)));
    } catch {
      throw notFound("pipeline run", runId);
    }
  }

  /** Newest first (run ids start with their creation time). */
  async list(req: ListRequest): Promise<Page<data.PipelineRun>> {
    const ids: string[] = [];
    for await (const info of this.opts.store.list(RUNS_PREFIX)) ids.push(info.key.slice(RUNS_PREFIX.length, -".json".length));
    ids.sort().reverse();
    const page = pageOfLive(ids, req, data.ListPipelineRunsRequestSchema, "ListPipelineRuns", (id) => id, "descending");
    return { items: await Promise.all(page.items.map((id) => this.get(id))), nextPageToken: page.nextPageToken };
  }

  async *watch(runId: string, signal: AbortSignal): AsyncGenerator<data.WatchPipelineRunResponse> {
    const live = this.live.get(runId);
    // Subscribe before the snapshot, so no change falls between the two.
    const sub: Subscription<data.WatchPipelineRunResponse> = new Subscription(signal, () => live?.listeners.delete(sub.push));
    live?.listeners.add(sub.push);
    try {
      const first = await this.get(runId);
      yield create(data.WatchPipelineRunResponseSchema, { pipelineRun: first, run: first, message: "snapshot" });
      if (!live || FINISHED.has(first.state)) return;
      for await (const next of sub) {
        yield next;
        if (next.run && FINISHED.has(next.run.state)) return;
      }
    } finally {
      sub.close();
    }
  }

  async cancel(runId: string): Promise<data.PipelineRun> {
    const live = this.live.get(runId);
    if (!live) return this.get(runId); // finished long ago: nothing to cancel
    if (!FINISHED.has(live.run.state)) live.abort.abort();
    // Wait briefly for the steps to stop, so the answer shows the final state.
    for (let i = 0; i < 100 && !FINISHED.has(live.run.state); i++) await new Promise((r) => setTimeout(r, 50));
    return snapshot(live.run);
  }

  private async save(run: data.PipelineRun): Promise<void> {
    await putJson(this.opts.store, runKey(run.runId), toJson(data.PipelineRunSchema, run));
  }

  private async read(key: string): Promise<data.PipelineRun> {
    return fromJson(data.PipelineRunSchema, (await getJson<JsonValue>(this.opts.store, key)) as JsonValue);
  }
}

/** A run's resource name is "pipelineRuns/{run_id}". */
export const PIPELINE_RUN_PREFIX = "pipelineRuns/";

/**
 * The copy of a run every answer carries: the resource's name and its *_time fields, filled from
 * what is stored (the deprecated *_at fields, kept filled for one release).
 */
function snapshot(run: data.PipelineRun): data.PipelineRun {
  const steps = run.steps.map((s) => create(data.StepStatusSchema, { ...s, ...(s.startedAt ? { startTime: s.startedAt } : {}), ...(s.finishedAt ? { endTime: s.finishedAt } : {}) }));
  // the steps run one after another: the run started with the first one that did
  const started = steps.find((s) => s.startTime)?.startTime;
  return create(data.PipelineRunSchema, {
    ...run,
    name: `${PIPELINE_RUN_PREFIX}${run.runId}`,
    steps,
    ...(run.createdAt ? { createTime: run.createdAt } : {}),
    ...(started ? { startTime: started } : {}),
    ...(run.finishedAt ? { endTime: run.finishedAt } : {}),
  });
}
