import { join, resolve } from "node:path";
import { createLogger, type Logger } from "@glimpse/logging";
import type { ObjectStore } from "@glimpse/objectstore";
import type { RunningServer } from "@glimpse/rpc";
import { caFromConfig, serve, storeFromConfig, type GlimpseConfig } from "@glimpse/runtime";
import { Code, ConnectError } from "@connectrpc/connect";
import { data, errorWithReason } from "@glimpse/api";
import { grpcClient } from "@glimpse/rpc";
import { splitCommand } from "./command.js";
import type { Executor } from "./executor.js";
import { LocalExecutor, type TrainerStore } from "./local.js";
import { TrainingManager, type DatasetResolver } from "./manager.js";
import { trainingBinding } from "./routes.js";

export interface BuildOptions {
  /** Overrides the configured port; 0 picks a free one (tests). */
  port?: number;
  /** Overrides the configured metrics port; undefined in tests means none. */
  metricsPort?: number | undefined;
  logger?: Logger;
  /** Default: from config. The local trainer always uses the store the config names. */
  store?: ObjectStore;
  /** Default: from config (GLIMPSE_TRAINING_EXECUTOR). */
  executor?: Executor;
  /** Longest delay before progress reaches the run record (ms). */
  persistIntervalMs?: number;
}

export interface TrainingServer extends RunningServer {
  manager: TrainingManager;
  store: ObjectStore;
  executor: Executor;
}

/** The store as the trainer (Python) reaches it: the same folder or MinIO bucket as the service. */
export function trainerStoreFromConfig(cfg: GlimpseConfig): TrainerStore {
  if (cfg.minioEndpoint) {
    return { kind: "minio", endpoint: cfg.minioEndpoint, accessKey: cfg.minioAccessKey, secretKey: cfg.minioSecretKey, bucket: cfg.minioBucket, region: cfg.minioRegion };
  }
  return { kind: "fs", root: resolve(cfg.dataDir, "store"), bucket: cfg.minioBucket };
}

export async function executorFromConfig(cfg: GlimpseConfig, store: ObjectStore, logger: Logger): Promise<Executor> {
  if (cfg.trainingExecutor === "kubernetes") {
    // Loaded only here: the Kubernetes client is large and the embedded default never needs it.
    const { KubernetesExecutor } = await import("./kubernetes.js");
    return new KubernetesExecutor({
      templateFile: cfg.trainingJobTemplate,
      namespace: cfg.trainingNamespace,
      store,
      pollMs: cfg.trainingPollMs,
      logger,
      ownerConfigMap: cfg.trainingJobOwner,
    });
  }
  return new LocalExecutor({
    trainerCommand: splitCommand(cfg.trainerCommand),
    exportCommand: splitCommand(cfg.trainerExportCommand),
    cwd: resolve(cfg.trainerCwd ?? "."),
    workDir: resolve(cfg.trainingWorkDir ?? join(cfg.dataDir, "training")),
    trainerStore: trainerStoreFromConfig(cfg),
    store,
    stopGraceMs: cfg.trainingStopGraceMs,
    logger,
  });
}

/**
 * StartTraining checks the dataset version a request names through the Data service's API (gRPC,
 * with deadlines and retries), so a caller gets the Data service's own NOT_FOUND for a version it
 * never published; the trainer then reads the version's files from the store (@glimpse/layout).
 */
export function dataServiceResolver(cfg: GlimpseConfig): DatasetResolver {
  const client = grpcClient(data.DataService, cfg.dataUrl, { timeoutMs: 10_000, tlsCa: caFromConfig(cfg) });
  return async (dataset, version) => {
    try {
      const res = await client.getDatasetInfo({ dataset, version });
      return res.version!.version;
    } catch (err) {
      const e = ConnectError.from(err);
      if (e.code === Code.NotFound) {
        throw errorWithReason(Code.FailedPrecondition, "NO_DATASET_VERSION", `no published dataset version: run the pipeline first (${e.rawMessage})`, { dataset, version });
      }
      throw e;
    }
  };
}

/** The Training gRPC server, listening, with its runs read back from the store. */
export async function build(cfg: GlimpseConfig, opts: BuildOptions = {}): Promise<TrainingServer> {
  const logger = opts.logger ?? createLogger("training", cfg.logLevel);
  const store = opts.store ?? storeFromConfig(cfg);
  await store.init();
  const executor = opts.executor ?? (await executorFromConfig(cfg, store, logger));
  const manager = new TrainingManager({
    store,
    executor,
    logger,
    datasets: dataServiceResolver(cfg),
    ...(opts.persistIntervalMs === undefined ? {} : { persistIntervalMs: opts.persistIntervalMs }),
  });
  await manager.init();
  const server = await serve({
    name: "training",
    cfg,
    bindings: [trainingBinding(manager)],
    port: opts.port ?? cfg.trainingPort,
    metricsPort: "port" in opts ? opts.metricsPort : cfg.trainingMetricsPort,
    logger,
  });
  return {
    ...server,
    manager,
    store,
    executor,
    async close(graceMs?: number) {
      // Local trainers end first (their runs are recorded FAILED), so open watches end too.
      await manager.close();
      await server.close(graceMs);
      if (!opts.store) await store.close();
    },
  };
}
