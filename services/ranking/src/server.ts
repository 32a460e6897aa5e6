import type { RunningServer } from "@glimpse/rpc";
import { serve, type GlimpseConfig } from "@glimpse/runtime";
import type { Logger } from "@glimpse/logging";
import { rankingBinding } from "./routes.js";

export interface BuildOptions {
  /** Overrides the configured port; 0 picks a free one (tests). */
  port?: number;
  /** Overrides the configured metrics port; undefined in tests means none. */
  metricsPort?: number | undefined;
  logger?: Logger;
}

/** The Ranking gRPC server, listening. */
export async function build(cfg: GlimpseConfig, opts: BuildOptions = {}): Promise<RunningServer> {
  return serve({
    name: "ranking",
    cfg,
    bindings: [rankingBinding()],
    port: opts.port ?? cfg.rankingPort,
    metricsPort: "port" in opts ? opts.metricsPort : cfg.rankingMetricsPort,
    ...(opts.logger ? { logger: opts.logger } : {}),
  });
}
