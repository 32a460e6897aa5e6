import { createLogger, type Logger } from "@glimpse/logging";
import { setBucketEventTarget, type ObjectStore } from "@glimpse/objectstore";
import type { RunningServer } from "@glimpse/rpc";
import { ranking } from "@glimpse/api";
import { grpcClient } from "@glimpse/rpc";
import { caFromConfig, serve, storeFromConfig, type GlimpseConfig } from "@glimpse/runtime";
import { SourceAllowList } from "@glimpse/pipeline";
import { ArgoClient } from "./argo.js";
import { dataBinding, defaultWorkRoot } from "./routes.js";
import { CollectionWorkflows } from "./collections/workflow.js";
import type { ServingLookup } from "./collections/manager.js";

export interface BuildOptions {
  /** Overrides the configured port; 0 picks a free one (tests). */
  port?: number;
  /** Overrides the configured metrics port; undefined in tests means none. */
  metricsPort?: number | undefined;
  logger?: Logger;
  store?: ObjectStore;
}

/** The Data gRPC server, listening. */
export async function build(cfg: GlimpseConfig, opts: BuildOptions = {}): Promise<RunningServer> {
  const logger = opts.logger ?? createLogger("data", cfg.logLevel);
  const store = opts.store ?? storeFromConfig(cfg);
  const allow = SourceAllowList.parse(cfg.sourceAllowlist);
  const argo =
    cfg.pipelineExecutor === "argo"
      ? ArgoClient.fromCluster({
          namespace: cfg.argoNamespace,
          template: cfg.argoTemplate,
          bucket: cfg.minioBucket,
          minioEndpoint: cfg.minioEndpoint,
          image: cfg.argoImage,
          syncUrl: cfg.argoSyncUrl,
          sourceAllowlist: allow.toString(),
          serviceAccount: cfg.argoServiceAccount,
          syncSecret: cfg.argoSyncSecret,
          storeSecret: cfg.argoStoreSecret,
          onOwnerError: (err) => logger.warn({ err: err.message }, "Workflows get no owner: cannot read the WorkflowTemplate (helm uninstall will not remove them)"),
        })
      : undefined;
  const collectionWorkflows = argo
    ? new CollectionWorkflows({ argo, store, logger, template: cfg.argoCollectionTemplate, minFiles: cfg.collectionWorkflowMinFiles, shards: cfg.collectionWorkflowShards })
    : undefined;
  const { binding, collections } = await dataBinding({ store, logger, workRoot: defaultWorkRoot(cfg.dataDir), argo, collectionWorkflows, allow, serving: rankingServing(cfg), collectionRelistMs: cfg.collectionRelistMs, sourceSecretsDir: cfg.sourceSecretsDir, bucket: cfg.minioBucket });
  if (cfg.storeNotifyArn) await routeBucketEvents(store, cfg.storeNotifyArn, logger);
  const server = await serve({
    name: "data",
    cfg,
    bindings: [binding],
    port: opts.port ?? cfg.dataPort,
    metricsPort: "port" in opts ? opts.metricsPort : cfg.dataMetricsPort,
    logger,
  });
  return {
    ...server,
    async close(graceMs?: number) {
      await server.close(graceMs);
      await collections.close();
    },
  };
}

/**
 * Bucket notifications for watched bucket collections: the bucket's events go to the target
 * MinIO was configured with (a webhook to /v1/storage-events). Not fatal: without them the
 * periodic re-list still follows the bucket, only later.
 */
async function routeBucketEvents(store: ObjectStore, arn: string, logger: Logger): Promise<void> {
  try {
    const outcome = await setBucketEventTarget(store, arn);
    if (outcome === "unsupported") logger.warn({ arn }, "GLIMPSE_STORE_NOTIFY_ARN is set but the object store is not MinIO: watched bucket collections follow by re-listing only");
    else logger.info({ arn, outcome }, "bucket notifications sent to the notification target");
  } catch (err) {
    logger.warn({ arn, err: (err as Error).message }, "cannot set the bucket's notifications; watched bucket collections follow by re-listing only");
  }
}

/** What search serves of a collection, from Ranking (short deadline: GetCollection must not hang on it). */
function rankingServing(cfg: GlimpseConfig): ServingLookup {
  const client = grpcClient(ranking.RankingService, cfg.rankingUrl, { timeoutMs: 2_000, tlsCa: caFromConfig(cfg) });
  return async (name) => {
    const r = await client.getCollectionIndex({ name });
    return { servingVersion: r.servingVersion, modelVersion: r.modelVersion, nearDuplicates: r.nearDuplicates };
  };
}
