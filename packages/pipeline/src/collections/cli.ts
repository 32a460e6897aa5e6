/**
 * The collection sync's workflow steps (argo/collection-workflowtemplate.yaml):
 *
 *   glimpse-pipeline collection-ingest  --collection ID --sync SYNC --shard I [--source-allowlist LIST]
 *   glimpse-pipeline collection-publish --collection ID --sync SYNC
 *
 * The plan they work from was written by the Data service (collections/<id>/syncs/<sync>/plan.json).
 * Exit codes as the dataset steps: 0 done, 1 failed, 2 usage, 75 transient (retry), 130 cancelled.
 */
import { parseArgs } from "node:util";
import { createLogger } from "@glimpse/logging";
import type { ObjectStore } from "@glimpse/objectstore";
import { PATTERNS } from "@glimpse/api";
import { SYNC_ID_RE } from "@glimpse/layout";
import { SourceAllowList } from "../sources.js";
import { CancelledError, errorMessage, isTransient } from "../util/errors.js";
import { ingestShard } from "./ingest.js";
import { publishShards } from "./publish.js";
import { SourceUnavailableError } from "./sources.js";

export const COLLECTION_COMMANDS = ["collection-ingest", "collection-publish"] as const;

export const COLLECTION_USAGE = `collection sync steps (the Argo workflow's; the Data service writes the plan):
  collection-ingest   --collection ID --sync SYNC --shard I   ingest shard I of the plan's files (resumes)
  collection-publish  --collection ID --sync SYNC             merge the shards, publish the version
  --source-allowlist LIST   where URL photos may come from (as GLIMPSE_SOURCE_ALLOWLIST)
  --concurrency N           files read and decoded at once (default 4)
  env GLIMPSE_SOURCE_SECRETS_DIR: credentials of buckets on other endpoints
  the object store: --store, --store-root, --bucket and MINIO_* as the dataset steps`;

const OPTIONS = {
  collection: { type: "string" },
  sync: { type: "string" },
  shard: { type: "string" },
  "source-allowlist": { type: "string" },
  concurrency: { type: "string" },
  store: { type: "string" },
  "store-root": { type: "string" },
  bucket: { type: "string" },
} as const;

export async function collectionMain(
  command: (typeof COLLECTION_COMMANDS)[number],
  argv: string[],
  storeOf: (v: { store?: string | undefined; "store-root"?: string | undefined; bucket?: string | undefined }) => ObjectStore,
): Promise<number> {
  const log = createLogger("pipeline");
  let store: ObjectStore | undefined;
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => ac.abort(new CancelledError(`cancelled by ${sig}`));
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    let v;
    try {
      v = parseArgs({ args: argv, options: OPTIONS, strict: true }).values;
      if (!v.collection || !PATTERNS.collectionId.test(v.collection)) throw new Error("--collection ID is required (a collection id)");
      if (!v.sync || !SYNC_ID_RE.test(v.sync)) throw new Error("--sync SYNC is required (a sync id)");
      if (command === "collection-ingest" && !/^\d+$/.test(v.shard ?? "")) throw new Error("--shard I is required (0, 1, …)");
      if (v.concurrency !== undefined && !/^[1-9]\d*$/.test(v.concurrency)) throw new Error("--concurrency must be a positive integer");
    } catch (err) {
      process.stderr.write(`${errorMessage(err)}\n\n${COLLECTION_USAGE}\n`);
      return 2;
    }
    store = storeOf(v);
    const t0 = Date.now();
    if (command === "collection-ingest") {
      const allow = SourceAllowList.parse((v["source-allowlist"] ?? "").split(",").filter((e) => e.trim() !== ""));
      let last = 0;
      const shard = await ingestShard({
        store,
        allow,
        collection: v.collection,
        sync: v.sync,
        shard: Number(v.shard),
        secretsDir: process.env["GLIMPSE_SOURCE_SECRETS_DIR"] || undefined,
        signal: ac.signal,
        concurrency: v.concurrency ? Number(v.concurrency) : undefined,
        onProgress: (done, total) => {
          if (Date.now() - last < 5_000 && done < total) return;
          last = Date.now();
          log.info({ event: "progress", done, total }, `shard ${v.shard}: ${done}/${total} files`);
        },
      });
      log.info({ event: "done", shard: shard.shard, files: shard.entries.length, read: shard.read, decoded: shard.decoded, seconds: (Date.now() - t0) / 1000 }, `collection-ingest: shard ${shard.shard} complete`);
    } else {
      const outcome = await publishShards(store, v.collection, v.sync);
      log.info({ event: "done", ...outcome, seconds: (Date.now() - t0) / 1000 }, outcome.changed ? `collection-publish: version ${outcome.version} published` : `collection-publish: nothing changed, version ${outcome.version} stays`);
    }
    return 0;
  } catch (err) {
    const code = err instanceof CancelledError || ac.signal.aborted ? 130 : isTransient(err) || err instanceof SourceUnavailableError ? 75 : 1;
    log.error({ event: "failed", exitCode: code }, errorMessage(err));
    return code;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await store?.close().catch(() => {});
  }
}
