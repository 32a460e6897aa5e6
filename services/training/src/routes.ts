import { training } from "@glimpse/api";
import { bind, type ServiceBinding } from "@glimpse/rpc";

/** The Training service's RPCs. Those not built yet answer UNIMPLEMENTED naming their owner. */
export function trainingBinding(): ServiceBinding {
  return bind(training.TrainingService, {}, "the Training service issue (training runs as local processes / Kubernetes Jobs)");
}
