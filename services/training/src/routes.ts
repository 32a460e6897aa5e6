import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { invalidArgument, training } from "@glimpse/api";
import { bind, type ServiceBinding } from "@glimpse/rpc";
import type { TrainingManager } from "./manager.js";

const RUN_PREFIX = "trainingRuns/";

/** The run as a resource: its name, *_time fields and eta beside the deprecated ones they replace. */
export function asResource(run: training.TrainingRun): training.TrainingRun {
  run.name = `${RUN_PREFIX}${run.runId}`;
  if (run.createdAt) run.createTime = run.createdAt;
  if (run.startedAt) run.startTime = run.startedAt;
  if (run.finishedAt) run.endTime = run.finishedAt;
  if (run.etaSeconds > 0) run.eta = durationFromMs(Math.round(run.etaSeconds * 1000));
  return run;
}

/** "trainingRuns/tr-…" → "tr-…" (the rules checked the shape; never empty here). */
const runIdOf = (name: string) => name.slice(RUN_PREFIX.length);

/**
 * The Training service's RPCs, served by the run manager. Requests have passed the proto's
 * buf.validate rules (run_id's and name's shape, page_size's range: INVALID_ARGUMENT, not
 * NOT_FOUND); a run's TrainingConfig is checked whole by planTraining (trainer-config.ts): its
 * rules and its overrides, in one answer. StartTraining, GetTrainingStatus, WatchTraining and
 * StopTraining are the deprecated forms of Create/Get/Watch/CancelTrainingRun (proto/MIGRATION.md).
 */
export function trainingBinding(manager: TrainingManager): ServiceBinding {
  const binding = bind(training.TrainingService, {
    async createTrainingRun(req) {
      if (!req.trainingRun) throw invalidArgument([{ field: "training_run", description: "is required", reason: "REQUIRED" }]);
      return { trainingRun: asResource(await manager.start(req.trainingRun.config, "training_run.config")) };
    },
    getTrainingRun(req) {
      return { trainingRun: asResource(manager.get(runIdOf(req.name))) };
    },
    async cancelTrainingRun(req) {
      return { trainingRun: asResource(await manager.stop(runIdOf(req.name))) };
    },
    async *watchTrainingRun(req, ctx) {
      for await (const m of manager.watch(runIdOf(req.name), ctx.signal)) {
        yield create(training.WatchTrainingRunResponseSchema, { ...(m.run ? { trainingRun: asResource(m.run) } : {}), event: m.event, message: m.message, ...(m.time ? { time: m.time } : {}) });
      }
    },
    listTrainingRuns(req) {
      const page = manager.list(req);
      return { runs: page.runs.map(asResource), nextPageToken: page.nextPageToken };
    },
    async startTraining(req) {
      return { run: asResource(await manager.start(req.config)) };
    },
    getTrainingStatus(req) {
      return { run: asResource(manager.get(req.runId)) };
    },
    async *watchTraining(req, ctx) {
      for await (const m of manager.watch(req.runId, ctx.signal)) {
        if (m.run) asResource(m.run);
        yield m;
      }
    },
    async stopTraining(req) {
      return { run: asResource(await manager.stop(req.runId)) };
    },
  });
  // The config's rules and its overrides are checked together by planTraining; Create's other
  // field (training_run, required) above.
  return { ...binding, checkedElsewhere: ["startTraining", "createTrainingRun"] };
}
