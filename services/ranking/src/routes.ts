import { ranking } from "@glimpse/api";
import type { ServiceBinding } from "@glimpse/rpc";

/** The Ranking service's RPCs. Those not built yet answer UNIMPLEMENTED naming their owner. */
export function rankingBinding(): ServiceBinding {
  return { service: ranking.RankingService, impl: {}, owner: "the serving issue (#5)" };
}
