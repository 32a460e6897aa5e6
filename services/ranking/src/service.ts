/**
 * The Ranking RPCs, assembled from one file per concern (service/*.ts). Every request has
 * passed the proto's buf.validate rules before a method runs (all problems at once, as
 * google.rpc.BadRequest field violations: @glimpse/rpc's server); every answer names the model
 * version and dataset version that produced it.
 */
import { buildIndexRpcs } from "./service/build-index.js";
import { collectionRpcs } from "./service/collections.js";
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
    ...collectionRpcs(deps),
  };
}
