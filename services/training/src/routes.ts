import { training, PATTERNS, Violations } from "@glimpse/api";
import { bind, type ServiceBinding } from "@glimpse/rpc";
import type { TrainingManager } from "./manager.js";

/** run_id: empty (a default run) or a run id's shape; a malformed one is INVALID_ARGUMENT, not NOT_FOUND. */
function checkRunId(runId: string): void {
  const v = new Violations();
  v.pattern("run_id", runId, PATTERNS.runId, "a run id such as tr-20260101120000000-a1b2c3");
  v.throwIfAny();
}

/** The Training service's RPCs, served by the run manager. */
export function trainingBinding(manager: TrainingManager): ServiceBinding {
  return bind(training.TrainingService, {
    async startTraining(req) {
      return { run: await manager.start(req.config) };
    },
    getTrainingStatus(req) {
      checkRunId(req.runId);
      return { run: manager.get(req.runId) };
    },
    async *watchTraining(req, ctx) {
      checkRunId(req.runId);
      yield* manager.watch(req.runId, ctx.signal);
    },
    listTrainingRuns(req) {
      const v = new Violations();
      const pageSize = v.pageSize("page_size", req.pageSize);
      v.throwIfAny();
      return manager.list(pageSize, req.pageToken);
    },
    async stopTraining(req) {
      checkRunId(req.runId);
      return { run: await manager.stop(req.runId) };
    },
  });
}
