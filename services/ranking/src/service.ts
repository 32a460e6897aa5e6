/**
 * The Ranking RPCs, assembled from one file per concern (service/*.ts). Every request is
 * validated with `Violations` (all problems at once, as google.rpc.BadRequest field
 * violations) before any work; every answer names the model version and dataset version that
 * produced it.
 */
import { buildIndexRpcs } from "./service/build-index.js";
import { demoRpcs } from "./service/demo.js";
import { modelRpcs } from "./service/models.js";
import { searchRpcs } from "./service/search.js";
import type { RankingImpl, ServiceDeps } from "./service/shared.js";
import { uploadRpcs } from "./service/upload.js";

export type { ServiceDeps } from "./service/shared.js";

export function rankingImpl(deps: ServiceDeps): Partial<RankingImpl> {
  return {
    ...searchRpcs(deps),
    ...uploadRpcs(deps),
    ...modelRpcs(deps),
    ...buildIndexRpcs(deps),
    ...demoRpcs(deps),
  };
}
