import { ranking } from "@glimpse/api";
import { bind, type ServiceBinding } from "@glimpse/rpc";

/** The Ranking service's RPCs. Those not built yet answer UNIMPLEMENTED naming their owner. */
export function rankingBinding(): ServiceBinding {
  return bind(ranking.RankingService, {}, "the serving issue (#5)");
}
