import { training } from "@glimpse/api";
import { bind, type ServiceBinding } from "@glimpse/rpc";
import type { TrainingManager } from "./manager.js";

/**
 * The Training service's RPCs, served by the run manager. Requests have passed the proto's
 * buf.validate rules (run_id's shape, page_size's range: INVALID_ARGUMENT, not NOT_FOUND);
 * StartTraining's TrainingConfig is checked whole by planTraining (trainer-config.ts): its rules
 * and its overrides, in one answer.
 */
export function trainingBinding(manager: TrainingManager): ServiceBinding {
  const binding = bind(training.TrainingService, {
    async startTraining(req) {
      return { run: await manager.start(req.config) };
    },
    getTrainingStatus(req) {
      return { run: manager.get(req.runId) };
    },
    async *watchTraining(req, ctx) {
      yield* manager.watch(req.runId, ctx.signal);
    },
    listTrainingRuns(req) {
      return manager.list(req);
    },
    async stopTraining(req) {
      return { run: await manager.stop(req.runId) };
    },
  });
  return { ...binding, checkedElsewhere: ["startTraining"] };
}
