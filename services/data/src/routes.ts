import { join } from "node:path";
import { data } from "@glimpse/api";
import type { Logger } from "@glimpse/logging";
import type { ObjectStore } from "@glimpse/objectstore";
import type { SourceAllowList } from "@glimpse/pipeline";
import { bind, type ServiceBinding } from "@glimpse/rpc";
import { DatasetCatalog } from "./catalog.js";
import type { ArgoClient } from "./argo.js";
import { PipelineRuns } from "./runs.js";
import { dataService, syncHook } from "./service.js";
import { CollectionManager, type ServingLookup } from "./collections/manager.js";
import { collectionService } from "./collections/service.js";
import type { CollectionWorkflows } from "./collections/workflow.js";

export interface DataDeps {
  store: ObjectStore;
  logger: Logger;
  /** Folder for local pipeline runs' work dirs. */
  workRoot: string;
  /** Submit runs as Argo Workflows (GLIMPSE_PIPELINE_EXECUTOR=argo). */
  argo?: ArgoClient | undefined;
  /** Large collection syncs' ingest as Argo workflows. */
  collectionWorkflows?: CollectionWorkflows | undefined;
  /** Where pipeline sources may come from (GLIMPSE_SOURCE_ALLOWLIST). */
  allow: SourceAllowList;
  /** What search serves of a collection (Ranking); absent: the fields stay empty. */
  serving?: ServingLookup;
  /** A watched collection's periodic re-list (ms). */
  collectionRelistMs: number;
  /** GLIMPSE_SOURCE_SECRETS_DIR. */
  sourceSecretsDir?: string | undefined;
  /** The configured store's bucket (MINIO_BUCKET): bucket notifications for others are ignored. */
  bucket?: string;
  /** Debounce of watch events and bucket notifications (ms); default 1 s. */
  collectionDebounceMs?: number;
}

/** The Data service: published dataset versions, samples, images, pipeline runs and collections. */
export async function dataBinding(deps: DataDeps): Promise<{ binding: ServiceBinding; collections: CollectionManager }> {
  await deps.store.init();
  const catalog = new DatasetCatalog(deps.store);
  const runs = new PipelineRuns({ store: deps.store, logger: deps.logger, workRoot: deps.workRoot, register: syncHook(deps.store, catalog), argo: deps.argo, allow: deps.allow });
  await runs.init();
  const collections = new CollectionManager({ store: deps.store, allow: deps.allow, logger: deps.logger, relistMs: deps.collectionRelistMs, secretsDir: deps.sourceSecretsDir, workflows: deps.collectionWorkflows, ...(deps.bucket !== undefined ? { bucket: deps.bucket } : {}), ...(deps.collectionDebounceMs !== undefined ? { debounceMs: deps.collectionDebounceMs } : {}), ...(deps.serving ? { serving: deps.serving } : {}) });
  await collections.init();
  return { binding: bind(data.DataService, { ...dataService(deps.store, catalog, runs, deps.allow), ...collectionService(deps.store, collections) }), collections };
}

export const defaultWorkRoot = (dataDir: string) => join(dataDir, "pipeline");
