#!/usr/bin/env node
/**
 * The Ranking CLI (the object store comes from the usual config: MINIO_* or GLIMPSE_DATA_DIR):
 *
 *   glimpse-ranking index [--model m-…|production] [--dataset flickr8k] [--dataset-version <16 hex>|latest]
 *                         [--kind auto|exact|hnsw] [--force] [--batch 16]
 *   glimpse-ranking seed  [--demo-dir demo]          import the demo pack into an empty store
 *   glimpse-ranking import <export dir> [--promote]  copy a trainer export into the registry (checksums verified)
 *   glimpse-ranking versions                          list the registry, newest first
 *
 *   node services/ranking/dist/cli.js index --dataset flickr8k
 */
import { parseArgs } from "node:util";
import { createLogger } from "@glimpse/logging";
import { loadConfig, storeFromConfig } from "@glimpse/runtime";
import { buildIndex } from "./index/build.js";
import { readIndexDocument } from "./index/store.js";
import { LoadedModel } from "./model/model.js";
import { fetchModel, listVersions, modelKey, readAlias, writeAlias } from "./registry.js";
import { DEFAULT_DEMO_DIR, readDemoModel, seedDemo } from "./seed.js";

const USAGE = `usage: glimpse-ranking <index|seed|versions> [options]
  index     --model m-…|production  --dataset NAME  --dataset-version HEX|latest  --kind auto|exact|hnsw  --force  --batch N
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
    },
    allowPositionals: true,
  });
  const cfg = loadConfig();
  const store = storeFromConfig(cfg);
  const logger = createLogger("ranking-cli", cfg.logLevel);
  switch (command) {
    case "index": {
      const version = a.model === "production" ? await readAlias(store) : a.model;
      if (!version) throw new Error("no production model: pass --model m-…");
      const dataset = a.dataset ?? cfg.rankingDataset;
      const dv = a["dataset-version"] === "latest" ? undefined : a["dataset-version"];
      if (a.kind !== "auto" && a.kind !== "exact" && a.kind !== "hnsw") throw new Error("--kind is auto, exact or hnsw");
      if (dv && !a.force && (await readIndexDocument(store, version, dataset, dv))) {
        process.stdout.write(`index of ${dataset} ${dv} for ${version} exists (use --force to rebuild)\n`);
        return 0;
      }
      const f = await fetchModel(store, version);
      const model = await LoadedModel.load(version, f.files, {
        executionProvider: cfg.rankingExecutionProvider,
        intraOpThreads: cfg.rankingIntraOpThreads,
        interOpThreads: cfg.rankingInterOpThreads,
        logger,
      });
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
