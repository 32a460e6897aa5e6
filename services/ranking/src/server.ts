import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ranking } from "@glimpse/api";
import { createLogger, type Logger } from "@glimpse/logging";
import type { ObjectStore } from "@glimpse/objectstore";
import type { RunningServer } from "@glimpse/rpc";
import { serve, storeFromConfig, type GlimpseConfig } from "@glimpse/runtime";
import { configureSimilarity } from "./index/similarity.js";
import { ModelManager } from "./lifecycle.js";
import { KubernetesIndexBuilder, type IndexBuilder } from "./lifecycle/index-builder.js";
import { rankingBinding } from "./routes.js";
import { DEFAULT_DEMO_DIR } from "./seed.js";

export interface BuildOptions {
  /** Overrides the configured port; 0 picks a free one (tests). */
  port?: number;
  /** Overrides the configured metrics port; undefined in tests means none. */
  metricsPort?: number | undefined;
  logger?: Logger;
  /** The object store; default from config (MinIO or the data dir's folder). */
  store?: ObjectStore;
  /**
   * How long build() waits for the first model check (seeding, loading, the index) before
   * resolving. main() passes 0: it listens at once and reports NOT_SERVING until loaded.
   * Default 120 s, so tests get a serving server.
   */
  readyTimeoutMs?: number;
  /** Demo pack to seed from; null = no seeding. Default from config. */
  demoDir?: string | null;
  /** Alias/dataset poll interval (ms); default from config. */
  pollMs?: number;
  /** Who computes missing indexes; default from config (GLIMPSE_INDEX_EXECUTOR). */
  indexBuilder?: IndexBuilder;
}

export interface RankingServer extends RunningServer {
  manager: ModelManager;
  store: ObjectStore;
}

const FALLBACK_QUERIES = ["a dog playing in the snow", "children playing on the beach", "a man riding a bike"];

/** The demo pack's example queries. */
export function demoQueries(dir: string | undefined): string[] {
  const f = dir ? join(dir, "queries.json") : undefined;
  if (f && existsSync(f)) {
    const q = JSON.parse(readFileSync(f, "utf8")) as unknown;
    if (Array.isArray(q) && q.every((x) => typeof x === "string")) return q;
  }
  return FALLBACK_QUERIES;
}

/** The Ranking gRPC server, listening. */
export async function build(cfg: GlimpseConfig, opts: BuildOptions = {}): Promise<RankingServer> {
  const logger = opts.logger ?? createLogger("ranking", cfg.logLevel);
  const store = opts.store ?? storeFromConfig(cfg);
  await store.init().catch((err: unknown) => logger.warn({ err: (err as Error).message }, "object store not ready; will retry"));
  const demoDir = opts.demoDir === null ? undefined : (opts.demoDir ?? (cfg.rankingSeedDemo ? (cfg.rankingDemoDir ?? DEFAULT_DEMO_DIR) : undefined));
  // GLIMPSE_RANKING_MAX_BATCH=1 turns every kind of micro-batching off (encoders and searches).
  configureSimilarity(cfg.rankingIntraOpThreads, cfg.rankingMaxBatch === 1 ? 1 : 64);
  const manager = new ModelManager({
    store,
    logger,
    serviceName: ranking.RankingService.typeName,
    dataset: cfg.rankingDataset,
    indexKind: cfg.rankingIndexKind,
    pollMs: opts.pollMs ?? cfg.rankingPollMs,
    demoDir,
    pinnedVersion: cfg.rankingModelVersion,
    // kubernetes: replicas only load; a Job computes each index once (local: this process does)
    ...(opts.indexBuilder
      ? { indexBuilder: opts.indexBuilder }
      : cfg.indexExecutor === "kubernetes"
      ? {
          indexBuilder: new KubernetesIndexBuilder({
            templateFile: cfg.indexJobTemplate,
            namespace: cfg.indexNamespace,
            ownerConfigMap: cfg.indexJobOwner,
            parallelism: cfg.indexJobParallelism,
            logger,
          }),
        }
      : {}),
    model: {
      executionProvider: cfg.rankingExecutionProvider,
      intraOpThreads: cfg.rankingIntraOpThreads,
      interOpThreads: cfg.rankingInterOpThreads,
      encoderWorkers: cfg.rankingEncoderWorkers,
      maxBatch: cfg.rankingMaxBatch,
    },
  });
  const server = await serve({
    name: "ranking",
    cfg,
    bindings: [rankingBinding({ manager, store, demoQueries: demoQueries(demoDir ?? cfg.rankingDemoDir ?? DEFAULT_DEMO_DIR) })],
    port: opts.port ?? cfg.rankingPort,
    metricsPort: "port" in opts ? opts.metricsPort : cfg.rankingMetricsPort,
    logger,
    // Readiness follows the model: NOT_SERVING until one is loaded.
    servingOnStart: false,
    // Its REST paths and Connect JSON answered here too: a search need not be relayed (#12).
    rest: { ranking: ranking.RankingService },
  });
  manager.attachHealth(server.health);
  const first = manager.start();
  const wait = opts.readyTimeoutMs ?? 120_000;
  if (wait > 0) await Promise.race([first, new Promise((r) => setTimeout(r, wait).unref())]);
  return {
    ...server,
    manager,
    store,
    async close(graceMs?: number) {
      await server.close(graceMs);
      await manager.close();
    },
  };
}
