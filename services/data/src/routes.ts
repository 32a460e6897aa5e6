import { data } from "@glimpse/api";
import { bind, type ServiceBinding } from "@glimpse/rpc";

/** The Data service's RPCs. Those not built yet answer UNIMPLEMENTED naming their owner. */
export function dataBinding(): ServiceBinding {
  return bind(data.DataService, {}, "the data pipeline issue (#3)");
}
