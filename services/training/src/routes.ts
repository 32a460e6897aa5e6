import { training } from "@glimpse/api";
import type { ServiceBinding } from "@glimpse/rpc";

/** The Training service's RPCs. Those not built yet answer UNIMPLEMENTED naming their owner. */
export function trainingBinding(): ServiceBinding {
  return { service: training.TrainingService, impl: {}, owner: "the Training service issue (training runs as local processes / Kubernetes Jobs)" };
}
