#!/usr/bin/env node
/**
 * The Ranking CLI (the object store comes from the usual config: MINIO_* or GLIMPSE_DATA_DIR):
 *
 *   glimpse-ranking index [--model m-…|production] [--dataset flickr8k] [--dataset-version <16 hex>|latest]
 *                         [--kind auto|exact|hnsw] [--force] [--batch 16]
 *   glimpse-ranking index-shard --model m-… --dataset NAME --dataset-version HEX --shards N [--shard I] [--job NAME]
 *                         [--store-config -]   (the store config as JSON on stdin, instead of the MINIO_ settings or GLIMPSE_DATA_DIR)
 *                         one worker of an index Job (index/shard.ts); I defaults to JOB_COMPLETION_INDEX
 *                         A collection version's index: --dataset collections/<id> --dataset-version <collection version>
 *                         (its name as a dataset: the index is stored at models/<m>/indexes/collections/<id>/<version>/)
 *                         (Kubernetes Indexed Jobs), else 0. Exit 0: the shard is stored; 143: stopped by
 *                         SIGTERM after storing the chunk under way
 *   glimpse-ranking seed  [--demo-dir demo]          import the demo pack into an empty store
 *   glimpse-ranking import <export dir> [--promote]  copy a trainer export into the registry (checksums verified)
 *   glimpse-ranking versions                          list the registry, newest first
 *
 *   node services/ranking/dist/cli.js index --dataset flickr8k
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { createObjectStore, type ObjectStoreConfig } from "@glimpse/objectstore";
import { createLogger } from "@glimpse/logging";
import { loadConfig, storeFromConfig } from "@glimpse/runtime";
import { collectionOf } from "./collections/source.js";
import { buildIndex } from "./index/build.js";
import { runShard } from "./index/shard.js";
import { readIndexDocument } from "./index/store.js";
import { LoadedModel } from "./model/model.js";
import { fetchModel, listVersions, modelKey, readAlias, writeAlias } from "./registry.js";
import { DEFAULT_DEMO_DIR, readDemoModel, seedDemo } from "./seed.js";

const USAGE = `usage: glimpse-ranking <index|index-shard|seed|import|versions> [options]
  index     --model m-…|production  --dataset NAME  --dataset-version HEX|latest  --kind auto|exact|hnsw  --force  --batch N
  index-shard --model m-…  --dataset NAME|collections/ID  --dataset-version HEX  --shards N  [--shard I]  [--job NAME]
  seed      --demo-dir DIR
  import    <export dir> [--promote]
  versions
`;

async function main(): Promise<number> {
  const [command, ...rest] = process.argv.slice(2);
  const { values: a, positionals } = parseArgs({
    args: rest,
    options: {
      model: { type: "string", default: "production" },
      dataset: { type: "string" },
      "dataset-version": { type: "string", default: "latest" },
      kind: { type: "string", default: "auto" },
      force: { type: "boolean", default: false },
      batch: { type: "string", default: "16" },
      "demo-dir": { type: "string" },
      promote: { type: "boolean", default: false },
      shards: { type: "string", default: "1" },
      shard: { type: "string" },
      job: { type: "string", default: "" },
      "store-config": { type: "string" },
    },
    allowPositionals: true,
  });
  const cfg = loadConfig();
  // `--store-config -`: the store's config as JSON on stdin (Ranking's own index worker opens the store it uses)
  const store = a["store-config"] === "-" ? createObjectStore(JSON.parse(readFileSync(0, "utf8")) as ObjectStoreConfig) : storeFromConfig(cfg);
  const logger = createLogger("ranking-cli", cfg.logLevel);
  const loadModel = async (version: string) =>
    LoadedModel.load(version, (await fetchModel(store, version)).files, {
      executionProvider: cfg.rankingExecutionProvider,
      intraOpThreads: cfg.rankingIntraOpThreads,
      interOpThreads: cfg.rankingInterOpThreads,
      logger,
    });
  switch (command) {
    case "index": {
      const version = a.model === "production" ? await readAlias(store) : a.model;
      if (!version) throw new Error("no production model: pass --model m-…");
      const dataset = a.dataset ?? cfg.rankingDataset;
      if (collectionOf(dataset)) throw new Error(`${dataset}: a collection's index is built by index-shard (--dataset ${dataset} --dataset-version <version> --shards 1), or by Ranking itself`);
      const dv = a["dataset-version"] === "latest" ? undefined : a["dataset-version"];
      if (a.kind !== "auto" && a.kind !== "exact" && a.kind !== "hnsw") throw new Error("--kind is auto, exact or hnsw");
      if (dv && !a.force && (await readIndexDocument(store, version, dataset, dv))) {
        process.stdout.write(`index of ${dataset} ${dv} for ${version} exists (use --force to rebuild)\n`);
        return 0;
      }
      const model = await loadModel(version);
      let last = "";
      const r = await buildIndex({
        store,
        model,
        dataset,
        datasetVersion: dv,
        kind: a.kind,
        imageBatch: Number(a.batch),
        onProgress: (p) => {
          const line = `${p.stage} ${p.done}/${p.total}`;
          if (line !== last && (p.done === p.total || p.done % 512 < Number(a.batch) || p.stage !== "images")) process.stderr.write(`${line}\n`);
          last = line;
        },
      });
      await model.release();
      process.stdout.write(
        `${JSON.stringify({ model_version: version, dataset, dataset_version: r.index.data.datasetVersion, images: r.index.images, captions: r.index.captions, kind: r.index.kind, seconds: Math.round(r.seconds * 10) / 10 })}\n`,
      );
      return 0;
    }
    case "index-shard": {
      const version = a.model;
      const dv = a["dataset-version"];
      if (!version || version === "production" || !dv || dv === "latest") throw new Error("index-shard needs --model m-… and --dataset-version HEX");
      if (a.kind !== "auto" && a.kind !== "exact" && a.kind !== "hnsw") throw new Error("--kind is auto, exact or hnsw");
      const shard = Number(a.shard ?? process.env["JOB_COMPLETION_INDEX"] ?? "0");
      // SIGTERM (a deleted or evicted pod): finish and store the chunk under way, then stop
      let stopping = false;
      process.on("SIGTERM", () => {
        stopping = true;
        logger.info("SIGTERM: storing the chunk under way, then stopping");
      });
      let model: LoadedModel | undefined;
      const r = await runShard({
        store,
        modelVersion: version,
        dataset: a.dataset ?? cfg.rankingDataset,
        datasetVersion: dv,
        shard,
        shards: Number(a.shards),
        kind: a.kind === "auto" ? cfg.rankingIndexKind : a.kind,
        job: a.job,
        ...(cfg.podName ? { worker: cfg.podName } : {}),
        model: async () => (model ??= await loadModel(version)),
        stopping: () => stopping,
        log: (msg, fields) => logger.info(fields, msg),
      });
      await model?.release();
      const u = process.resourceUsage();
      // what a pod of the Job needs (the chart's indexJob.resources come from these)
      const usage = { max_rss_mib: Math.round(u.maxRSS / 1024), cpu_s: Math.round((u.userCPUTime + u.systemCPUTime) / 1e5) / 10 };
      logger.info({ shard, chunks: r.embedded, images: r.images, assembled: r.assembled, stopped: r.stopped, ...usage }, r.stopped ? "shard stopped" : "shard done");
      return r.stopped ? 143 : 0;
    }
    case "seed": {
      const r = await seedDemo(store, a["demo-dir"] ?? cfg.rankingDemoDir ?? DEFAULT_DEMO_DIR, logger);
      process.stdout.write(`${JSON.stringify(r)}\n`);
      return 0;
    }
    case "import": {
      const dir = positionals[0];
      if (!dir) throw new Error("usage: glimpse-ranking import <export dir> [--promote]");
      const model = readDemoModel(dir, ".");
      if (!model) throw new Error(`${dir} has no checksums.json`);
      if (!(await store.stat(modelKey(model.version, "checksums.json")))) {
        for (const [f, bytes] of model.files) if (f !== "checksums.json") await store.put(modelKey(model.version, f), bytes);
        await store.put(modelKey(model.version, "checksums.json"), model.files.get("checksums.json")!);
      }
      if (a.promote) await writeAlias(store, model.version);
      process.stdout.write(`${JSON.stringify({ version: model.version, files: model.files.size, promoted: a.promote })}\n`);
      return 0;
    }
    case "versions": {
      for (const m of await listVersions(store)) process.stdout.write(`${m.version}${m.production ? "  (production)" : ""}  ${m.backbone}  test.t2i_r10=${m.metrics["test.t2i_r10"] ?? "-"}\n`);
      return 0;
    }
    default:
      process.stderr.write(USAGE);
      return command === undefined || command === "help" ? 0 : 2;
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`error: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
