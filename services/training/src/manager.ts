/**
 * Training runs: the records (in the object store), the one-active-run rule, watchers, and the
 * executor that runs them.
 *
 * Every run lives in memory (this service is the only writer of `training/runs/`) and is written
 * through to its record: at once on state changes, epochs and phases; progress steps at most
 * every `persistIntervalMs`. On start-up the records are read back; a run that was active is
 * handed to the executor to follow again (a Kubernetes Job) or marked FAILED ("service
 * restarted") when that is impossible (a local process).
 */
import { clone, create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorWithReason, notFound, pageOfLive, training, type ListRequest } from "@glimpse/api";
import type { Logger } from "@glimpse/logging";
import { Subscription } from "@glimpse/rpc";
import { ObjectNotFoundError, type ObjectStore } from "@glimpse/objectstore";
import { readLatest } from "@glimpse/layout/datasets";
import { applyEvent, progressModel, type ProgressModel, type RunEvent } from "./events.js";
import type { Executor, LaunchSpec, Outcome, RunSink } from "./executor.js";
import { loadRuns, newRunId, saveRun, type StoredRun } from "./records.js";
import { planTraining, type TrainingPlan } from "./trainer-config.js";

const State = training.TrainingState;
type Run = training.TrainingRun;
type WatchMessage = training.WatchTrainingResponse;

const RESTARTED_ERROR = "service restarted";

/**
 * A copy of a run for a caller, as the resource it is (every copy a reply or an event carries is
 * made here): its name and the *_time fields and eta beside the deprecated ones they replace.
 */
function snapshot(stored: Run): Run {
  const run = clone(training.TrainingRunSchema, stored);
  run.name = `${RUN_PREFIX}${run.runId}`;
  if (run.createdAt) run.createTime = run.createdAt;
  if (run.startedAt) run.startTime = run.startedAt;
  if (run.finishedAt) run.endTime = run.finishedAt;
  if (run.etaSeconds > 0) run.eta = durationFromMs(Math.round(run.etaSeconds * 1000));
  return run;
}

/** A run's resource name is "trainingRuns/{run_id}". */
export const RUN_PREFIX = "trainingRuns/";

function isTerminal(state: training.TrainingState): boolean {
  return state === State.SUCCEEDED || state === State.FAILED || state === State.STOPPED;
}

const stateName = (s: training.TrainingState): string => training.TrainingState[s] ?? String(s);

/** Resolves a dataset version ("" = latest); in the mesh this asks the Data service. */
export type DatasetResolver = (dataset: string, version: string) => Promise<string>;

export interface ManagerOptions {
  store: ObjectStore;
  /** Default: read the published layout from the store directly (unit tests, tools). */
  datasets?: DatasetResolver;
  executor: Executor;
  logger: Logger;
  /** Longest delay before progress reaches the run record (ms); default 2000. */
  persistIntervalMs?: number;
  /** How long StopTraining waits for the run to end after asking the executor (ms); default 30 s. */
  stopWaitMs?: number;
}

interface Live {
  stored: StoredRun;
  progress: ProgressModel;
  watchers: Set<(m: WatchMessage) => void>;
  /** Resolves when the run reaches a terminal state. */
  ended: Promise<void>;
  markEnded: () => void;
  /** The executor's launch, while in progress. */
  launching?: Promise<unknown>;
  stopRequested: boolean;
  // write-through of the record
  dirty: boolean;
  timer?: NodeJS.Timeout | undefined;
  writing: Promise<void>;
}

export class TrainingManager {
  private readonly runs = new Map<string, Live>();
  private active: string | undefined;
  private starting = false;
  private closed = false;
  private readonly persistMs: number;

  constructor(private readonly opts: ManagerOptions) {
    this.persistMs = opts.persistIntervalMs ?? 2000;
  }

  /** Reads the records and recovers runs that were active when the service stopped. */
  async init(): Promise<void> {
    const stored = await loadRuns(this.opts.store, (key, err) => this.opts.logger.error({ key, err: (err as Error).message }, "skipping an unreadable run record"));
    stored.sort((a, b) => compareIds(a.run.runId, b.run.runId));
    for (const s of stored) this.runs.set(s.run.runId, this.newLive(s, progressFor(s.run)));
    // Newest first: at most one run stays active.
    for (const s of [...stored].reverse()) {
      if (isTerminal(s.run.state)) continue;
      const live = this.runs.get(s.run.runId)!;
      let followed = false;
      if (s.run.executor === this.opts.executor.kind && this.active === undefined) {
        try {
          const plan = planTraining(s.run.config);
          followed = await this.opts.executor.recover({ run: s.run, plan, local: s.local }, this.sinkFor(live));
        } catch (err) {
          this.opts.logger.error({ run_id: s.run.runId, err: (err as Error).message }, "could not recover the run");
        }
      }
      if (followed) {
        if (!isTerminal(live.stored.run.state)) this.active = s.run.runId;
      } else {
        this.finish(live, { state: "failed", error: RESTARTED_ERROR });
      }
    }
    for (const live of this.runs.values()) await live.writing;
  }

  // ---- queries ----------------------------------------------------------------------------

  /** A copy of a run; an empty id = the most recent. */
  get(runId: string): Run {
    return snapshot(this.live(runId).stored.run);
  }

  /** Newest first. */
  list(req: ListRequest): { runs: Run[]; nextPageToken: string } {
    const ids = [...this.runs.keys()].sort((a, b) => compareIds(b, a));
    const page = pageOfLive(ids, req, training.ListTrainingRunsRequestSchema, "ListTrainingRuns", (id) => id, "descending");
    return { runs: page.items.map((id) => snapshot(this.runs.get(id)!.stored.run)), nextPageToken: page.nextPageToken };
  }

  /** The active run's id, if any. */
  activeRunId(): string | undefined {
    return this.active;
  }

  watcherCount(runId: string): number {
    return this.runs.get(runId)?.watchers.size ?? 0;
  }

  private live(runId: string): Live {
    if (runId === "") {
      const newest = [...this.runs.keys()].sort((a, b) => compareIds(b, a))[0];
      if (newest === undefined) throw notFound("training run", "", "no training runs yet");
      return this.runs.get(newest)!;
    }
    const live = this.runs.get(runId);
    if (!live) throw notFound("training run", runId);
    return live;
  }

  // ---- StartTraining -----------------------------------------------------------------------

  /** `field`: the config's path in the request, for the violations ("config", "training_run.config"). */
  async start(config: training.TrainingConfig | undefined, field = "config"): Promise<Run> {
    const plan = planTraining(config, field);
    if (this.closed) throw new ConnectError("the Training service is shutting down", Code.Unavailable);
    if (this.active !== undefined || this.starting) {
      const id = this.active ?? "";
      throw errorWithReason(Code.FailedPrecondition, "TRAINING_RUN_ACTIVE", `training run ${id || "(starting)"} is active: stop it or wait for it to finish`, { run_id: id });
    }
    this.starting = true;
    try {
      const version = await this.resolveVersion(plan);
      const runId = newRunId();
      const run = create(training.TrainingRunSchema, {
        runId,
        config: config ? clone(training.TrainingConfigSchema, config) : create(training.TrainingConfigSchema, {}),
        state: State.PENDING,
        phase: "",
        totalEpochs: plan.epochs + plan.phase2Epochs,
        createdAt: timestampNow(),
        executor: this.opts.executor.kind,
        datasetVersion: version,
      });
      const live = this.newLive({ run }, progressModel(plan));
      this.runs.set(runId, live);
      this.active = runId;
      await this.flush(live, true);
      const spec: LaunchSpec = { run, plan };
      live.launching = this.opts.executor.launch(spec, this.sinkFor(live));
      try {
        await live.launching;
      } catch (err) {
        const message = `could not start the trainer: ${(err as Error).message}`;
        this.finish(live, { state: "failed", error: message });
        await live.writing;
        throw errorWithReason(Code.Unavailable, "TRAINER_START_FAILED", message, { run_id: runId });
      } finally {
        delete live.launching;
      }
      if (run.state === State.PENDING) {
        run.state = State.RUNNING;
        run.startedAt = timestampNow();
        this.emit(live, { kind: "state", message: stateName(run.state), time: timestampNow() });
        await this.flush(live, true);
      }
      this.opts.logger.info({ run_id: runId, dataset_version: version, executor: run.executor }, "training run started");
      return snapshot(run);
    } finally {
      this.starting = false;
    }
  }

  /** The plan's dataset version, or the dataset's latest published one. */
  private async resolveVersion(plan: TrainingPlan): Promise<string> {
    if (this.opts.datasets) return this.opts.datasets(plan.dataset, plan.datasetVersion);
    const store = this.opts.store;
    try {
      if (plan.datasetVersion !== "") {
        const key = `datasets/${plan.dataset}/versions/${plan.datasetVersion}/manifest.json`;
        if (!(await store.stat(key))) throw notFound("dataset version", `${plan.dataset}/${plan.datasetVersion}`, `dataset version ${plan.datasetVersion} of ${plan.dataset} is not published`);
        return plan.datasetVersion;
      }
      const latest = await readLatest(store, plan.dataset);
      if (!latest) throw new ObjectNotFoundError(`datasets/${plan.dataset}/latest.json`);
      const version = latest.pointer?.version;
      if (typeof version !== "string" || !/^[0-9a-f]{16}$/.test(version)) throw new Error(`datasets/${plan.dataset}/latest.json names no version`);
      return version;
    } catch (err) {
      if (err instanceof ConnectError) throw err;
      if (err instanceof ObjectNotFoundError) {
        throw errorWithReason(Code.FailedPrecondition, "NO_DATASET_VERSION", `no published dataset version: run the pipeline first (dataset ${plan.dataset})`, { dataset: plan.dataset });
      }
      throw new ConnectError(`reading the dataset from the object store failed: ${(err as Error).message}`, Code.Unavailable);
    }
  }

  // ---- StopTraining ------------------------------------------------------------------------

  /** Stops a run (empty id = the active one, else the most recent); a finished run comes back unchanged. */
  async stop(runId: string): Promise<Run> {
    const live = runId === "" && this.active !== undefined ? this.runs.get(this.active)! : this.live(runId);
    const run = live.stored.run;
    if (isTerminal(run.state)) return snapshot(run);
    live.stopRequested = true;
    if (live.launching) await live.launching.catch(() => undefined);
    this.emit(live, { kind: "log", message: "stopping", time: timestampNow() });
    try {
      await this.opts.executor.stop(run.runId);
    } catch (err) {
      throw new ConnectError(`stopping run ${run.runId} failed: ${(err as Error).message}`, Code.Unavailable);
    }
    const waited = await Promise.race([live.ended.then(() => true), sleep(this.opts.stopWaitMs ?? 30_000).then(() => false)]);
    if (!waited) throw new ConnectError(`run ${run.runId} did not stop in time; its state is ${stateName(run.state)}`, Code.DeadlineExceeded);
    await live.writing;
    return snapshot(run);
  }

  // ---- WatchTraining -----------------------------------------------------------------------

  /** A snapshot, then one message per event until the run ends or `signal` aborts. */
  async *watch(runId: string, signal: AbortSignal): AsyncGenerator<WatchMessage> {
    const live = this.live(runId);
    const sub: Subscription<WatchMessage> = new Subscription(signal, () => live.watchers.delete(sub.push));
    live.watchers.add(sub.push);
    try {
      const run = live.stored.run;
      yield create(training.WatchTrainingResponseSchema, {
        run: snapshot(run),
        event: "state",
        message: `snapshot: ${stateName(run.state)}`,
        time: timestampNow(),
      });
      if (isTerminal(run.state)) return;
      for await (const m of sub) {
        yield m;
        if (m.event === "state" && m.run && isTerminal(m.run.state)) return;
      }
    } finally {
      sub.close();
    }
  }

  // ---- shutdown ----------------------------------------------------------------------------

  /** Lets the executor wind down (local trainers end, their runs FAILED), then writes every record. */
  async close(): Promise<void> {
    this.closed = true;
    await this.opts.executor.close();
    await Promise.all([...this.runs.values()].map((live) => this.flush(live)));
  }

  // ---- run updates -------------------------------------------------------------------------

  private newLive(stored: StoredRun, progress: ProgressModel): Live {
    let markEnded!: () => void;
    const ended = new Promise<void>((r) => (markEnded = r));
    if (isTerminal(stored.run.state)) markEnded();
    return { stored, progress, watchers: new Set(), ended, markEnded, stopRequested: false, dirty: false, writing: Promise.resolve() };
  }

  private sinkFor(live: Live): RunSink {
    const run = live.stored.run;
    const ended = () => isTerminal(run.state);
    return {
      event: (ev) => {
        if (ended()) return;
        const out = applyEvent(run, ev, live.progress);
        this.emit(live, out);
        this.persist(live, out.kind !== "progress");
      },
      log: (message) => {
        if (!ended()) this.emit(live, { kind: "log", message, time: timestampNow() });
      },
      phase: (name, message) => {
        if (ended()) return;
        run.phase = name;
        this.emit(live, { kind: "log", message, time: timestampNow() });
        this.persist(live, true);
      },
      attached: (info) => {
        if (info.local) live.stored.local = info.local;
        if (info.jobName) run.jobName = info.jobName;
        this.persist(live, true);
      },
      finished: (outcome) => this.finish(live, outcome),
    };
  }

  private finish(live: Live, outcome: Outcome): void {
    const run = live.stored.run;
    if (isTerminal(run.state)) return;
    run.finishedAt = timestampNow();
    run.etaSeconds = 0;
    let message: string;
    switch (outcome.state) {
      case "succeeded":
        run.state = State.SUCCEEDED;
        run.modelVersion = outcome.modelVersion;
        message = `SUCCEEDED: model ${outcome.modelVersion} registered${promotionText(run)}`;
        break;
      case "stopped":
        run.state = State.STOPPED;
        message = "STOPPED (the checkpoint is kept)";
        break;
      case "failed":
        run.state = State.FAILED;
        run.error = outcome.error;
        message = `FAILED: ${outcome.error}`;
        break;
    }
    if (this.active === run.runId) this.active = undefined;
    this.opts.logger.info({ run_id: run.runId, state: stateName(run.state), error: run.error || undefined, model_version: run.modelVersion || undefined }, "training run ended");
    this.emit(live, { kind: "state", message, time: run.finishedAt });
    this.persist(live, true);
    live.markEnded();
  }

  private emit(live: Live, ev: RunEvent): void {
    if (live.watchers.size === 0) return;
    const m = create(training.WatchTrainingResponseSchema, {
      run: snapshot(live.stored.run),
      event: ev.kind,
      message: ev.message,
      time: ev.time,
    });
    for (const w of live.watchers) w(m);
  }

  /** Schedules a write of the record: now when `urgent`, else within persistIntervalMs. */
  private persist(live: Live, urgent: boolean): void {
    live.dirty = true;
    if (urgent) void this.flush(live);
    else live.timer ??= setTimeout(() => void this.flush(live), this.persistMs);
  }

  /** Writes the record if it changed (or `force`); one write at a time per run. */
  private flush(live: Live, force = false): Promise<void> {
    if (force) live.dirty = true;
    if (live.timer) {
      clearTimeout(live.timer);
      live.timer = undefined;
    }
    live.writing = live.writing.then(async () => {
      if (!live.dirty) return;
      live.dirty = false;
      try {
        await saveRun(this.opts.store, live.stored);
      } catch (err) {
        live.dirty = true;
        this.opts.logger.error({ run_id: live.stored.run.runId, err: (err as Error).message }, "writing the run record failed; will retry");
        if (!this.closed) live.timer ??= setTimeout(() => void this.flush(live), Math.max(this.persistMs, 1000));
      }
    });
    return live.writing;
  }
}

/** How the run's promotion went, for its final message (the decision itself is run.promotion). */
function promotionText(run: Run): string {
  if (!run.config?.promote) return "";
  const p = run.promotion;
  if (!p) return "; the export reported no promotion decision";
  return p.promoted ? ` and promoted to production (${p.reason})` : `, not promoted: ${p.reason}`;
}

/** Run ids embed their creation time; ties (same ms) fall back to the random suffix. */
function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function progressFor(run: Run): ProgressModel {
  try {
    return progressModel(planTraining(run.config));
  } catch {
    return { epochs: run.totalEpochs, phase2Epochs: 0, batchSize: 128, phase2BatchSize: 128 };
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

