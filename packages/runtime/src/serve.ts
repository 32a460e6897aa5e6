import { createLogger, type Logger } from "@glimpse/logging";
import { closeOnSignals, startGrpcServer, type GrpcServerOptions, type RunningServer, type ServiceBinding } from "@glimpse/rpc";
import { apiKeysFromConfig, tlsFromConfig } from "./index.js";
import type { GlimpseConfig } from "./config.js";

export interface ServeOptions {
  name: string;
  cfg: GlimpseConfig;
  bindings: ServiceBinding[];
  port: number;
  metricsPort?: number | undefined;
  logger?: Logger;
  servingOnStart?: boolean;
  /** Answer these services' REST paths and Connect over HTTP/1.1 too (startGrpcServer's `rest`). */
  rest?: NonNullable<GrpcServerOptions["rest"]>["services"];
}

/** Starts one service's gRPC server from the shared config. */
export function serve(opts: ServeOptions): Promise<RunningServer> {
  const logger = opts.logger ?? createLogger(opts.name, opts.cfg.logLevel);
  return startGrpcServer({
    name: opts.name,
    host: opts.cfg.host,
    port: opts.port,
    services: opts.bindings,
    logger,
    apiKeys: apiKeysFromConfig(opts.cfg),
    tls: tlsFromConfig(opts.cfg),
    metricsPort: opts.metricsPort,
    ...(opts.servingOnStart === undefined ? {} : { servingOnStart: opts.servingOnStart }),
    ...(opts.rest ? { rest: { services: opts.rest, maxBodyBytes: opts.cfg.maxBodyBytes, timeoutMs: opts.cfg.backendTimeoutMs } } : {}),
  });
}

/** A service's main(): start, print where it listens, drain on SIGTERM. */
export async function runMain(name: string, start: () => Promise<{ close(graceMs?: number): Promise<void> }>, graceMs: number): Promise<void> {
  const logger = createLogger(name);
  try {
    const server = await start();
    closeOnSignals(logger, () => server.close(graceMs));
  } catch (err) {
    logger.fatal({ err: err instanceof Error ? err.message : String(err) }, "failed to start");
    process.exit(1);
  }
}
