import { data } from "@glimpse/api";
import type { ServiceBinding } from "@glimpse/rpc";

/** The Data service's RPCs. Those not built yet answer UNIMPLEMENTED naming their owner. */
export function dataBinding(): ServiceBinding {
  return { service: data.DataService, impl: {}, owner: "the data pipeline issue (#3)" };
}
