export { listSource, sourceReader, otherBucketConfig, folderUrl, SourceUnavailableError, type SourceFile, type SourceContext } from "./sources.js";
export { planSync, newSyncId, type PlanOptions, type PlannedSync } from "./plan.js";
export { ingestFiles, ingestShard, knownPhotos, storeIngested, SyncPlanError, type IngestContext, type ShardOptions } from "./ingest.js";
export { publishPlan, publishShards, manifestOf, type Published } from "./publish.js";
export { syncCollection, syncResultOf, type SyncOptions, type SyncProgress, type SyncResult } from "./sync.js";
