import { create } from "@bufbuild/protobuf";
import { invalidArgument, training } from "@glimpse/api";
import { bind, type ServiceBinding } from "@glimpse/rpc";
import { RUN_PREFIX, type TrainingManager } from "./manager.js";

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
      return { trainingRun: await manager.start(req.trainingRun.config, "training_run.config") };
    },
    getTrainingRun(req) {
      return { trainingRun: manager.get(runIdOf(req.name)) };
    },
    async cancelTrainingRun(req) {
      return { trainingRun: await manager.stop(runIdOf(req.name)) };
    },
    async *watchTrainingRun(req, ctx) {
      for await (const m of manager.watch(runIdOf(req.name), ctx.signal)) {
        yield create(training.WatchTrainingRunResponseSchema, { ...(m.run ? { trainingRun: m.run } : {}), event: m.event, message: m.message, ...(m.time ? { time: m.time } : {}) });
      }
    },
    listTrainingRuns(req) {
      return manager.list(req);
    },
    async startTraining(req) {
      return { run: await manager.start(req.config) };
    },
    getTrainingStatus(req) {
      return { run: manager.get(req.runId) };
    },
    async *watchTraining(req, ctx) {
      yield* manager.watch(req.runId, ctx.signal);
    },
    async stopTraining(req) {
      return { run: await manager.stop(req.runId) };
    },
  });
  // The config's rules and its overrides are checked together by planTraining; Create's other
  // field (training_run, required) above.
  return { ...binding, checkedElsewhere: ["startTraining", "createTrainingRun"] };
}
