import { bool, int, list, load, oneOf, port, string, url, type ConfigOf } from "@glimpse/config";

/**
 * Every process of the mesh reads this one schema, so a key means the same thing
 * everywhere and the README's table is generated from it (`npm run docs:config`).
 */
export const schema = {
  host: string("GLIMPSE_HOST", "Address every server binds to (0.0.0.0 in containers).", { default: "127.0.0.1" }),
  logLevel: string("GLIMPSE_LOG_LEVEL", "pino log level: trace, debug, info, warn, error.", { default: "info" }),
  dataDir: string("GLIMPSE_DATA_DIR", "Folder for the embedded default's object store and run state.", { default: ".data" }),
  minioEndpoint: url("MINIO_ENDPOINT", "MinIO/S3 endpoint, e.g. http://minio:9000. Set it to switch every service from the filesystem store to MinIO."),
  minioAccessKey: string("MINIO_ACCESS_KEY", "MinIO access key.", { default: "" }),
  minioSecretKey: string("MINIO_SECRET_KEY", "MinIO secret key.", { default: "", secret: true }),
  minioBucket: string("MINIO_BUCKET", "Bucket (or folder under the data dir) holding datasets and models.", { default: "glimpse" }),
  minioRegion: string("MINIO_REGION", "S3 region.", { default: "us-east-1" }),
  apiKeys: list("GLIMPSE_API_KEYS", "Bearer API keys, comma separated, each `key` or `key:read`/`key:write`. Required for mutating RPCs when set.", { secret: true, default: [] }),
  authReads: bool("GLIMPSE_AUTH_READS", "Also require a key for read-only RPCs (search, info).", false),
  allowOpen: bool("GLIMPSE_ALLOW_OPEN", "Run without API keys (every RPC open). Off: the embedded default generates a key instead.", false),
  tlsCert: string("GLIMPSE_TLS_CERT", "PEM certificate file: serve TLS on every gRPC and HTTP port."),
  tlsKey: string("GLIMPSE_TLS_KEY", "PEM private key file for GLIMPSE_TLS_CERT."),
  tlsCa: string("GLIMPSE_TLS_CA", "PEM CA bundle services trust when calling each other over TLS."),
  rankingPort: port("GLIMPSE_RANKING_PORT", "Ranking gRPC port.", 50051),
  trainingPort: port("GLIMPSE_TRAINING_PORT", "Training gRPC port.", 50052),
  dataPort: port("GLIMPSE_DATA_PORT", "Data gRPC port.", 50053),
  gatewayPort: port("GLIMPSE_GATEWAY_PORT", "Gateway HTTP port (Connect, gRPC-Web, REST, pages).", 8000),
  rankingMetricsPort: port("GLIMPSE_RANKING_METRICS_PORT", "Ranking Prometheus /metrics port.", 9091),
  trainingMetricsPort: port("GLIMPSE_TRAINING_METRICS_PORT", "Training Prometheus /metrics port.", 9092),
  dataMetricsPort: port("GLIMPSE_DATA_METRICS_PORT", "Data Prometheus /metrics port.", 9093),
  rankingUrl: url("GLIMPSE_RANKING_URL", "Where other processes reach Ranking.", { default: "http://127.0.0.1:50051" }),
  rankingDnsName: string("GLIMPSE_RANKING_DNS_NAME", "A DNS name whose A/AAAA records are Ranking's replicas (on Kubernetes a headless Service: the chart sets it): the gateway spreads its calls to Ranking over them, request by request, with GLIMPSE_RANKING_URL's scheme, port and TLS name, and calls GLIMPSE_RANKING_URL itself while the name resolves to nothing. Empty: GLIMPSE_RANKING_URL's host."),
  trainingUrl: url("GLIMPSE_TRAINING_URL", "Where other processes reach Training.", { default: "http://127.0.0.1:50052" }),
  dataUrl: url("GLIMPSE_DATA_URL", "Where other processes reach Data.", { default: "http://127.0.0.1:50053" }),
  backendTimeoutMs: int("GLIMPSE_BACKEND_TIMEOUT_MS", "Deadline for service-to-service calls without one (ms).", { default: 30_000, min: 100 }),
  backendResolveMs: int("GLIMPSE_BACKEND_RESOLVE_MS", "How often the gateway resolves each backend's host name (Ranking's: GLIMPSE_RANKING_DNS_NAME) again, to spread the calls over every address, request by request; also at once after a connection fails (ms). 0 = connect to each URL by name (one replica per connection).", { default: 5_000, min: 0 }),
  corsOrigins: list("GLIMPSE_CORS_ORIGINS", "Origins allowed to call the gateway from browsers (`*` for any); empty = same origin only.", { default: [] }),
  maxBodyBytes: int("GLIMPSE_MAX_BODY_BYTES", "Largest request body the gateway, and a service's REST paths, accept (bytes).", { default: 16 * 1024 * 1024, min: 1024 }),
  shutdownGraceMs: int("GLIMPSE_SHUTDOWN_GRACE_MS", "How long SIGTERM waits for in-flight RPCs (ms).", { default: 10_000, min: 0 }),

  // ---- Ranking (serving): model registry, gallery index, inference --------------------------
  rankingDataset: string("GLIMPSE_RANKING_DATASET", "Dataset whose latest version is the serving gallery; the demo gallery until it is published.", { default: "flickr8k" }),
  rankingDemoDir: string("GLIMPSE_RANKING_DEMO_DIR", "Demo pack folder seeded into an empty store (default: the repository's demo/)."),
  rankingSeedDemo: bool("GLIMPSE_RANKING_SEED_DEMO", "Seed the demo model and gallery when the registry has no production model.", true),
  rankingExecutionProvider: oneOf("GLIMPSE_RANKING_EXECUTION_PROVIDER", "onnxruntime execution provider: cpu, or cuda (falls back to cpu when CUDA is missing).", ["cpu", "cuda"], "cpu"),
  rankingIntraOpThreads: int("GLIMPSE_RANKING_INTRA_OP_THREADS", "onnxruntime intra-op threads per session (0 = one per core; one with encoder workers).", { default: 0, min: 0 }),
  rankingEncoderWorkers: int("GLIMPSE_RANKING_ENCODER_WORKERS", "Worker threads that run the encoders beside the thread that serves, each with both encoders and one batch at a time, one intra-op thread each unless GLIMPSE_RANKING_INTRA_OP_THREADS says otherwise (0 = the encoders on the serving thread).", { default: 2, min: 0, max: 64 }),
  rankingInterOpThreads: int("GLIMPSE_RANKING_INTER_OP_THREADS", "onnxruntime inter-op threads per session.", { default: 1, min: 1 }),
  rankingIndexKind: oneOf("GLIMPSE_RANKING_INDEX_KIND", "Gallery index: auto (exact below 100,000 images, HNSW from there), exact (brute-force top-k) or hnsw (approximate).", ["auto", "exact", "hnsw"], "auto"),
  rankingMaxBatch: int("GLIMPSE_RANKING_MAX_BATCH", "Most concurrent requests gathered into one encoder or search run (1 = no micro-batching).", { default: 32, min: 1, max: 256 }),
  rankingModelVersion: string("GLIMPSE_RANKING_MODEL_VERSION", "Serve this registry version instead of the production alias (canaries, benchmarks); empty = follow the alias."),
  rankingPollMs: int("GLIMPSE_RANKING_POLL_MS", "How often Ranking checks the production alias and the gallery's latest dataset version (ms).", { default: 5_000, min: 100 }),

  // ---- Ranking: who computes a gallery's index (once per model and dataset version) -----------
  indexExecutor: oneOf("GLIMPSE_INDEX_EXECUTOR", "Who embeds a gallery that has no stored index: local (a worker process of Ranking) or kubernetes (an Indexed Job; replicas only load stored indexes). Meanwhile Ranking serves the newest pair that has one.", ["local", "kubernetes"], "local"),
  indexJobTemplate: string("GLIMPSE_INDEX_JOB_TEMPLATE", "Kubernetes index executor: the batch/v1 Job template file (the chart mounts it from a ConfigMap).", { default: "/etc/glimpse/index-job.yaml" }),
  indexJobOwner: string("GLIMPSE_INDEX_JOB_OWNER", "Kubernetes index executor: the ConfigMap holding the Job template; every index Job is owned by it (helm uninstall deletes them). Empty: Jobs have no owner."),
  indexNamespace: string("GLIMPSE_INDEX_NAMESPACE", "Kubernetes index executor: namespace for index Jobs; default the service account's namespace."),
  podName: string("GLIMPSE_POD_NAME", "The pod's name (index Jobs set it from the downward API): recorded as the worker of each index chunk it stores. Empty: the host name."),
  indexJobParallelism: int("GLIMPSE_INDEX_JOB_PARALLELISM", "Kubernetes index executor: pods (shards) per index Job.", { default: 2, min: 1, max: 64 }),

  // ---- Data: where pipeline runs execute -------------------------------------------------------
  sourceAllowlist: list(
    "GLIMPSE_SOURCE_ALLOWLIST",
    "Where pipeline archives may be downloaded from, comma separated: `file:` (any file), `file:///folder` (files under it), `http:`/`https:` (public hosts; loopback, private and link-local addresses refused), `https://host[:port]` or `https://*.domain` (those hosts, private addresses included). The chart allows `https:` only.",
    { default: ["file:", "http:", "https:"] },
  ),
  sourceSecretsDir: string("GLIMPSE_SOURCE_SECRETS_DIR", "Where a bucket collection on another S3 endpoint finds the credentials its `credentials_secret` names: <dir>/<name>/access-key and secret-key (the chart mounts the Secrets listed in data.collections.sourceSecrets there)."),
  collectionRelistMs: int("GLIMPSE_COLLECTION_RELIST_MS", "How often a watched collection's source is listed again to catch what its notifications missed (a folder is also watched with inotify) (ms).", { default: 15_000, min: 1_000 }),
  storeNotifyArn: string(
    "GLIMPSE_STORE_NOTIFY_ARN",
    "MinIO notification target (e.g. `arn:minio:sqs::GLIMPSE:webhook`, a webhook to the gateway's /v1/storage-events) the Data service sends the bucket's ObjectCreated/ObjectRemoved events to, set at start-up, so watched bucket collections follow changes at once; empty = off (the periodic re-list only).",
  ),
  pipelineExecutor: oneOf("GLIMPSE_PIPELINE_EXECUTOR", "Where pipeline runs execute: local (inside the Data service) or argo (an Argo Workflow from the argo/ WorkflowTemplate).", ["local", "argo"], "local"),
  argoNamespace: string("GLIMPSE_ARGO_NAMESPACE", "Argo executor: namespace of the WorkflowTemplate and the Workflows.", { default: "default" }),
  argoTemplate: string("GLIMPSE_ARGO_TEMPLATE", "Argo executor: the WorkflowTemplate to run.", { default: "glimpse-dataset-pipeline" }),
  argoImage: string("GLIMPSE_ARGO_IMAGE", "Argo executor: the image the pipeline steps run (the project image)."),
  argoSyncUrl: string("GLIMPSE_ARGO_SYNC_URL", "Argo executor: URL the workflow's sync step POSTs the published version to (the gateway's /data/register)."),
  argoServiceAccount: string("GLIMPSE_ARGO_SERVICE_ACCOUNT", "Argo executor: ServiceAccount the workflow's pods run as (needs workflowtaskresults create/patch; argo/rbac.yaml); empty = the template's."),
  argoSyncSecret: string("GLIMPSE_ARGO_SYNC_SECRET", "Argo executor: Secret (key `api-key`, a write key) the sync step sends as its bearer key; empty = the template's default."),
  argoStoreSecret: string("GLIMPSE_ARGO_STORE_SECRET", "Argo executor: Secret (keys `access-key`, `secret-key`) with the upload step's object-store credentials; empty = the template's default."),
  argoCollectionTemplate: string("GLIMPSE_ARGO_COLLECTION_TEMPLATE", "Argo executor: the WorkflowTemplate a large collection sync's ingest runs (argo/collection-workflowtemplate.yaml).", { default: "glimpse-collection-sync" }),
  collectionWorkflowMinFiles: int("GLIMPSE_COLLECTION_WORKFLOW_MIN_FILES", "Argo executor: a collection sync with at least this many new or changed files ingests them in a workflow (ingest pods, then a publish pod); smaller ones, and folder sources, ingest in the Data service.", { default: 200, min: 1 }),
  collectionWorkflowShards: int("GLIMPSE_COLLECTION_WORKFLOW_SHARDS", "Argo executor: ingest pods of a collection sync's workflow, each reading and decoding its slice of the files.", { default: 2, min: 1, max: 64 }),

  // ---- Training: where runs execute (local processes or Kubernetes Jobs) ---------------------
  trainingExecutor: oneOf("GLIMPSE_TRAINING_EXECUTOR", "Where training runs: local (a child process of the Training service) or kubernetes (a Job per run).", ["local", "kubernetes"], "local"),
  trainerCommand: string("GLIMPSE_TRAINER_COMMAND", "Local executor: the trainer command, run in GLIMPSE_TRAINER_CWD; the service appends run, store and dataset flags (the config goes in GLIMPSE_TRAIN_CONFIG). Flags given here override the request's config.", { default: "uv run --frozen --project model python -m glimpse_model.train" }),
  trainerExportCommand: string("GLIMPSE_TRAINER_EXPORT_COMMAND", "Local executor: the export command run after a successful training run (ONNX export + registration under models/).", { default: "uv run --frozen --project model python -m glimpse_model.export" }),
  trainerCwd: string("GLIMPSE_TRAINER_CWD", "Local executor: the folder the trainer and export commands run in (the one holding model/); default: the service's working directory (npm start: the repository root)."),
  trainingWorkDir: string("GLIMPSE_TRAINING_WORK_DIR", "Local executor: run folders (checkpoints, events) and the feature cache; default <GLIMPSE_DATA_DIR>/training."),
  trainingStopGraceMs: int("GLIMPSE_TRAINING_STOP_GRACE_MS", "StopTraining: how long the trainer gets after SIGTERM before SIGKILL (ms).", { default: 10_000, min: 0 }),
  trainingJobTemplate: string("GLIMPSE_TRAINING_JOB_TEMPLATE", "Kubernetes executor: the batch/v1 Job template file (the chart mounts it from a ConfigMap).", { default: "/etc/glimpse/training-job.yaml" }),
  trainingJobOwner: string("GLIMPSE_TRAINING_JOB_OWNER", "Kubernetes executor: the ConfigMap holding the Job template; every run's Job is owned by it, so deleting it (helm uninstall) deletes the Jobs and their pods. Empty: Jobs have no owner."),
  trainingNamespace: string("GLIMPSE_TRAINING_NAMESPACE", "Kubernetes executor: namespace for training Jobs; default the service account's namespace."),
  trainingPollMs: int("GLIMPSE_TRAINING_POLL_MS", "Kubernetes executor: how often progress events are read from the object store and the Job's status is checked (ms).", { default: 5_000, min: 100 }),
};

export type GlimpseConfig = ConfigOf<typeof schema>;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): GlimpseConfig {
  const cfg = load(schema, env);
  if ((cfg.tlsCert === undefined) !== (cfg.tlsKey === undefined)) {
    throw new Error("invalid configuration: GLIMPSE_TLS_CERT and GLIMPSE_TLS_KEY must be set together");
  }
  if (cfg.minioEndpoint && (!cfg.minioAccessKey || !cfg.minioSecretKey)) {
    throw new Error("invalid configuration: MINIO_ENDPOINT needs MINIO_ACCESS_KEY and MINIO_SECRET_KEY");
  }
  return cfg;
}
