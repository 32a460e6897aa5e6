import { ranking } from "@glimpse/api";
import type { ServiceBinding } from "@glimpse/rpc";
import { rankingImpl, type ServiceDeps } from "./service.js";

/** The Ranking service's RPCs. */
export function rankingBinding(deps: ServiceDeps): ServiceBinding {
  return { service: ranking.RankingService, impl: rankingImpl(deps) as ServiceBinding["impl"] };
}
