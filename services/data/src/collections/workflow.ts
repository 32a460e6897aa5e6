/**
 * A collection sync's ingest as an Argo workflow (argo/collection-workflowtemplate.yaml): the
 * Data service plans the sync, writes the plan, and submits `shards` ingest pods and a publish
 * pod; it follows the workflow, reporting the shards' progress, until the version is published.
 * Small syncs stay in this process (a watched folder's or bucket's few new photos reach search
 * sooner than pods start); so do sources the pods cannot read (a folder on this server, a bucket
 * on another endpoint whose Secret only this pod mounts).
 */
import { readSyncOutcome, readSyncShard, syncPlanKey, syncsPrefix, type CollectionRecord, type SyncOutcome, type SyncPlan } from "@glimpse/layout";
import type { Logger } from "@glimpse/logging";
import type { ObjectStore } from "@glimpse/objectstore";
import { setTimeout as sleep } from "node:timers/promises";
import { templateWorkflow, type ArgoClient, type WorkflowStatus } from "../argo.js";

export interface CollectionWorkflowOptions {
  argo: ArgoClient;
  store: ObjectStore;
  logger: Logger;
  /** The WorkflowTemplate (GLIMPSE_ARGO_COLLECTION_TEMPLATE). */
  template: string;
  /** A sync with fewer files to read than this ingests in this process. */
  minFiles: number;
  /** Ingest pods per workflow (at most one per file). */
  shards: number;
  /** How often the workflow's status and the shards' progress are read (ms). */
  pollMs?: number;
}

/** Where a sync's ingest ran, once it was handed to a workflow. */
export interface WorkflowHandle {
  workflow: string;
  sync: string;
}

export class WorkflowFailedError extends Error {
  override readonly name = "WorkflowFailedError";
}

/** The abort reason of a Data service that stops: its workflows run on, and the next process follows them. */
export class ShuttingDown extends Error {
  override readonly name = "ShuttingDown";
}

export class CollectionWorkflows {
  constructor(private readonly opts: CollectionWorkflowOptions) {}

  /** Whether this sync's ingest runs in a workflow: enough files, and a source the pods can read. */
  takes(record: CollectionRecord, plan: SyncPlan): boolean {
    const s = record.source;
    const readable = s.kind === "urls" || s.kind === "uploads" || (s.kind === "bucket" && !s.endpoint && !s.credentials_secret);
    return readable && plan.todo.length >= this.opts.minFiles;
  }

  /** Writes the plan and submits its workflow. */
  async start(plan: SyncPlan): Promise<WorkflowHandle> {
    plan.shards = Math.max(1, Math.min(this.opts.shards, plan.todo.length));
    await this.opts.store.put(syncPlanKey(plan.collection, plan.sync), JSON.stringify(plan), { contentType: "application/json" });
    const o = this.opts.argo.options;
    const params: Record<string, string | undefined> = {
      collection: plan.collection,
      sync: plan.sync,
      shards: String(plan.shards),
      bucket: o.bucket,
      "minio-endpoint": o.minioEndpoint,
      "store-secret": o.storeSecret,
      "source-allowlist": o.sourceAllowlist,
      image: o.image,
    };
    const name = `glimpse-collection-${plan.sync}`;
    await this.opts.argo.create(templateWorkflow(name, this.opts.template, params, { "glimpse.dev/collection": plan.collection, "glimpse.dev/collection-sync": plan.sync }, o));
    this.opts.logger.info({ collection: plan.collection, workflow: name, files: plan.todo.length, shards: plan.shards }, "collection ingest handed to a workflow");
    return { workflow: name, sync: plan.sync };
  }

  /**
   * Follows the workflow to its end: the publish step's outcome, or WorkflowFailedError with Argo's
   * message. Aborting terminates the workflow, unless the reason is ShuttingDown. `progress` gets
   * the files the shards have ingested.
   */
  async wait(collection: string, h: WorkflowHandle, progress: (done: number) => void, signal?: AbortSignal): Promise<SyncOutcome> {
    const pollMs = this.opts.pollMs ?? 2_000;
    let status: WorkflowStatus = {};
    const complete = new Map<number, number>();
    for (;;) {
      if (signal?.aborted) {
        if (!(signal.reason instanceof ShuttingDown)) await this.opts.argo.terminate(h.workflow).catch((err: unknown) => this.opts.logger.warn({ workflow: h.workflow, err: (err as Error).message }, "cannot stop the collection's workflow"));
        signal.throwIfAborted();
      }
      try {
        status = await this.opts.argo.status(h.workflow);
      } catch (err) {
        if ((err as { code?: number }).code === 404) throw new WorkflowFailedError(`the ingest workflow ${h.workflow} is gone`);
        this.opts.logger.warn({ workflow: h.workflow, err: (err as Error).message }, "cannot read the collection's workflow; trying again");
      }
      if (status.phase === "Succeeded") break;
      if (status.phase === "Failed" || status.phase === "Error") throw new WorkflowFailedError(`the ingest workflow ${h.workflow} failed: ${status.message ?? status.phase}`);
      progress(await this.ingested(collection, h.sync, complete));
      await sleep(pollMs, undefined, { signal }).catch(() => {}); // an abort is handled at the loop's top
    }
    const outcome = await readSyncOutcome(this.opts.store, collection, h.sync);
    if (!outcome) throw new WorkflowFailedError(`the ingest workflow ${h.workflow} succeeded without publishing`);
    return outcome;
  }

  /** Files the shards saved so far; a complete shard is read once (a shard's document grows with its files). */
  private async ingested(collection: string, sync: string, complete: Map<number, number>): Promise<number> {
    let done = 0;
    for (let i = 0; i < this.opts.shards; i++) {
      let n = complete.get(i);
      if (n === undefined) {
        const shard = await readSyncShard(this.opts.store, collection, sync, i).catch(() => undefined);
        n = shard?.entries.length ?? 0;
        if (shard?.complete) complete.set(i, n);
      }
      done += n;
    }
    return done;
  }

  /** Removes the collection's sync folders (plans, shards, outcomes): after a sync ended, whichever way. */
  async clean(collection: string): Promise<void> {
    const keys: string[] = [];
    for await (const o of this.opts.store.list(syncsPrefix(collection))) keys.push(o.key);
    for (const k of keys) await this.opts.store.delete(k).catch(() => {});
  }
}
