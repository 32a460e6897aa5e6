#!/usr/bin/env node
/**
 * The pipeline CLI:
 *
 *   glimpse-pipeline <run|download|extract|process|split|validate|upload|sync> [options]
 *   node packages/pipeline/dist/cli.js run --images-url file:///…/Flickr8k_Dataset.zip --captions-url file:///…/Flickr8k_text.zip
 *
 * Exit codes: 0 done, 1 failed, 2 bad usage, 3 validation failed, 75 transient failure
 * (network, object store unavailable: worth a retry), 130 cancelled.
 */
import { readFile, rm } from "node:fs/promises";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { createObjectStore, type ObjectStore, type ObjectStoreConfig } from "@glimpse/objectstore";
import { createLogger } from "@glimpse/logging";
import { collectionMain, COLLECTION_COMMANDS, COLLECTION_USAGE } from "./collections/cli.js";
import { STEPS, type EventSink, type StepName } from "./events.js";
import { defaultWorkDir, runSteps, StepFailedError, type PipelineResult } from "./pipeline.js";
import { resolveParams, type PipelineParamsInput } from "./params.js";
import { SourceAllowList } from "./sources.js";
import { jsonReporter, terminalReporter } from "./progress.js";
import type { ExpectedCounts, PipelineOptions } from "./steps/context.js";
import { httpSyncHook, SYNC_API_KEY_ENV } from "./steps/sync.js";
import { CancelledError, PipelineInputError, ValidationError, errorMessage, isTransient } from "./util/errors.js";

export const EXIT = { ok: 0, failed: 1, usage: 2, validation: 3, transient: 75, cancelled: 130 } as const;

const USAGE = `usage: glimpse-pipeline <command> [options]

commands:
  run        every step: download → extract → process → split → validate → upload → sync
  download   fetch the archives (http(s) or file://; resumes, retries, verifies sha256)
  extract    unpack them in their original layout
  process    normalise images (224x224 JPEG q90; conforming JPEGs kept as they are) and clean captions
  split      official split lists or a seeded ratio split
  validate   check everything; writes validate/report.json; fails on violations
  upload     upload content-addressed objects, then publish manifest and latest.json
  sync       tell the other services about the published version
  collection-ingest, collection-publish   a collection sync's workflow steps (below)

A single step needs the steps before it finished in the same --work-dir with the same
parameters, and always runs (resuming what an interrupted attempt left); \`run\` skips
steps already finished there and resumes interrupted ones.

dataset:
  --dataset NAME            dataset name (default flickr8k)
  --images-url URL          images archive (default: the public Flickr8K archive)
  --captions-url URL        captions/splits archive (default: the public Flickr8K archive)
  --images-sha256 HEX       expected sha256 of the images archive (verified when given)
  --captions-sha256 HEX     expected sha256 of the captions archive
  --dataset-size full|sample  (default full)
  --sample-ratio R          in (0, 1] with --dataset-size sample (default 0.1)
  --split-mode official|ratio (default official)
  --train-ratio R --dev-ratio R --test-ratio R   ratio split (default 0.6/0.2/0.2)
  --seed N                  seed for sampling and ratio splits (default 42)
  --expect K=N[,K=N...]     expected counts (images, captions, train, dev, test, unsplit)
  --source-allowlist LIST   where the archives may come from, checked before the download and on
                            every connection and redirect (entries as GLIMPSE_SOURCE_ALLOWLIST:
                            file:, file:///folder, https:, https://host[:port]; default: no check)

run:
  --work-dir DIR            working folder (default .data/pipeline/<dataset>-<params hash>)
  --concurrency N           images processed at once (default 4; validate: twice)
  --upload-concurrency N    objects uploaded at once (default 8)
  --sync-url URL            POST the published version (JSON) to this URL in the sync step;
                            env GLIMPSE_SYNC_API_KEY (or GLIMPSE_SYNC_API_KEY_FILE, a file holding it)
                            is sent as "authorization: Bearer <key>" (a write key)
  --clean                   remove the work dir after a successful run
  --progress auto|bar|json  progress bar on a terminal, JSON log lines otherwise (default auto)

object store (upload, run):
  --store fs|minio          default: minio when MINIO_ENDPOINT is set, else fs
  --store-root DIR          fs store root (default .data/store)
  --bucket NAME             bucket / folder (default $MINIO_BUCKET or glimpse)
  env MINIO_ENDPOINT (http://host:9000), MINIO_ACCESS_KEY, MINIO_SECRET_KEY, MINIO_BUCKET, MINIO_REGION

${COLLECTION_USAGE}

exit codes: 0 ok, 1 failed, 2 usage, 3 validation failed, 75 transient (retry), 130 cancelled`;

class UsageError extends Error {}

const OPTIONS = {
  dataset: { type: "string" },
  "images-url": { type: "string" },
  "source-allowlist": { type: "string" },
  "captions-url": { type: "string" },
  "images-sha256": { type: "string" },
  "captions-sha256": { type: "string" },
  "dataset-size": { type: "string" },
  "sample-ratio": { type: "string" },
  "split-mode": { type: "string" },
  "train-ratio": { type: "string" },
  "dev-ratio": { type: "string" },
  "test-ratio": { type: "string" },
  seed: { type: "string" },
  expect: { type: "string" },
  "work-dir": { type: "string" },
  concurrency: { type: "string" },
  "upload-concurrency": { type: "string" },
  "sync-url": { type: "string" },
  clean: { type: "boolean" },
  progress: { type: "string" },
  store: { type: "string" },
  "store-root": { type: "string" },
  bucket: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number (got ${JSON.stringify(v)})`);
  return n;
}

function parseExpect(v: string | undefined): ExpectedCounts | undefined {
  if (!v) return undefined;
  const out: Record<string, number> = {};
  for (const part of v.split(",")) {
    const [k, n] = part.split("=");
    if (!k || !["images", "captions", "train", "dev", "test", "unsplit"].includes(k.trim()) || n === undefined || !/^\d+$/.test(n.trim())) {
      throw new UsageError(`--expect takes key=count pairs (images, captions, train, dev, test, unsplit): ${JSON.stringify(part)}`);
    }
    out[k.trim()] = Number(n.trim());
  }
  return out;
}

/** The object store from flags and MINIO_* variables. */
export function storeConfig(values: { store?: string | undefined; "store-root"?: string | undefined; bucket?: string | undefined }, env: NodeJS.ProcessEnv = process.env): ObjectStoreConfig {
  const kind = values.store ?? (env["MINIO_ENDPOINT"] ? "minio" : "fs");
  const bucket = values.bucket ?? env["MINIO_BUCKET"] ?? "glimpse";
  if (kind === "fs") return { kind: "fs", root: resolve(values["store-root"] ?? ".data/store"), bucket };
  if (kind !== "minio") throw new UsageError(`--store must be fs or minio`);
  const endpoint = env["MINIO_ENDPOINT"];
  const accessKey = env["MINIO_ACCESS_KEY"];
  const secretKey = env["MINIO_SECRET_KEY"];
  if (!endpoint || !accessKey || !secretKey) throw new UsageError("--store minio needs MINIO_ENDPOINT, MINIO_ACCESS_KEY and MINIO_SECRET_KEY");
  const cfg: ObjectStoreConfig = { kind: "minio", endpoint: /^https?:\/\//.test(endpoint) ? endpoint : `http://${endpoint}`, accessKey, secretKey, bucket };
  if (env["MINIO_REGION"]) cfg.region = env["MINIO_REGION"];
  return cfg;
}

/** The sync step's API key: $GLIMPSE_SYNC_API_KEY, else the file named by $GLIMPSE_SYNC_API_KEY_FILE. */
export async function syncApiKey(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const direct = env[SYNC_API_KEY_ENV]?.trim();
  if (direct) return direct;
  const file = env[`${SYNC_API_KEY_ENV}_FILE`];
  if (!file) return undefined;
  try {
    return (await readFile(file, "utf8")).trim() || undefined;
  } catch (err) {
    throw new UsageError(`${SYNC_API_KEY_ENV}_FILE=${file}: ${errorMessage(err)}`);
  }
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<number> {
  const first = argv[0] as (typeof COLLECTION_COMMANDS)[number];
  if (COLLECTION_COMMANDS.includes(first)) {
    try {
      return await collectionMain(first, argv.slice(1), (v) => createObjectStore(storeConfig(v)));
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      process.stderr.write(`error: ${err.message}\n`);
      return EXIT.usage;
    }
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    process.stderr.write(`${errorMessage(err)}\n\n${USAGE}\n`);
    return EXIT.usage;
  }
  const { values: v, positionals } = parsed;
  const command = positionals[0];
  if (v.help || !command) {
    (v.help ? process.stdout : process.stderr).write(`${USAGE}\n`);
    return v.help ? EXIT.ok : EXIT.usage;
  }
  if (command !== "run" && !(STEPS as readonly string[]).includes(command)) {
    process.stderr.write(`unknown command ${JSON.stringify(command)}\n\n${USAGE}\n`);
    return EXIT.usage;
  }
  if (positionals.length > 1) {
    process.stderr.write(`unexpected argument ${JSON.stringify(positionals[1])}\n`);
    return EXIT.usage;
  }

  const log = createLogger("pipeline");
  let store: ObjectStore | undefined;
  let bar = false;
  const ac = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (++signals > 1) process.exit(EXIT.cancelled);
    process.stderr.write(`\n${sig}: cancelling (again to quit at once)\n`);
    ac.abort(new CancelledError(`cancelled by ${sig}`));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  try {
    const input: PipelineParamsInput = {
      dataset: v.dataset,
      imagesUrl: v["images-url"],
      captionsUrl: v["captions-url"],
      imagesSha256: v["images-sha256"],
      captionsSha256: v["captions-sha256"],
      datasetSize: v["dataset-size"] as PipelineParamsInput["datasetSize"],
      sampleRatio: num("sample-ratio", v["sample-ratio"]),
      splitMode: v["split-mode"] as PipelineParamsInput["splitMode"],
      trainRatio: num("train-ratio", v["train-ratio"]),
      devRatio: num("dev-ratio", v["dev-ratio"]),
      testRatio: num("test-ratio", v["test-ratio"]),
      seed: num("seed", v.seed),
    };
    const params = resolveParams(input);
    const workDir = resolve(v["work-dir"] ?? defaultWorkDir(params));
    const mode = v.progress ?? "auto";
    if (!["auto", "bar", "json"].includes(mode)) throw new UsageError("--progress must be auto, bar or json");
    bar = mode === "bar" || (mode === "auto" && process.stderr.isTTY === true);
    const onEvent: EventSink = bar ? terminalReporter(process.stderr) : jsonReporter(log);

    const steps: StepName[] = command === "run" ? [...STEPS] : [command as StepName];
    if (steps.includes("upload")) {
      const cfg = storeConfig(v);
      store = createObjectStore(cfg);
    }
    const expect = parseExpect(v.expect);
    const options: PipelineOptions = { workDir, onEvent, signal: ac.signal };
    if (store) options.store = store;
    if (expect) options.expect = expect;
    const c = num("concurrency", v.concurrency);
    if (c !== undefined) options.concurrency = Math.max(1, Math.floor(c));
    const uc = num("upload-concurrency", v["upload-concurrency"]);
    if (uc !== undefined) options.uploadConcurrency = Math.max(1, Math.floor(uc));
    if (v["source-allowlist"] !== undefined) {
      try {
        options.download = { allow: SourceAllowList.parse(v["source-allowlist"].split(",").filter((e) => e.trim() !== "")) };
      } catch (err) {
        throw new UsageError(`--source-allowlist: ${(err as Error).message}`);
      }
    }
    if (v["sync-url"]) options.sync = httpSyncHook(v["sync-url"], { apiKey: await syncApiKey() });

    if (bar) process.stderr.write(`glimpse pipeline ${command}: ${params.dataset}, work dir ${workDir}${store ? `, store ${store.kind} ${store.location}` : ""}\n`);
    else log.info({ event: "start", command, params, workDir, ...(store ? { store: `${store.kind}:${store.location}` } : {}) }, `pipeline ${command} started`);

    const t0 = Date.now();
    const result: PipelineResult = await runSteps(params, options, steps, { rerun: command !== "run" });
    const summary = { event: "done", state: result.state, dataset: result.dataset, version: result.version, manifestKey: result.manifestKey, published: result.published, seconds: (Date.now() - t0) / 1000 };
    if (bar) {
      process.stderr.write(
        result.version
          ? `${result.state}: ${result.dataset} version ${result.version}${result.published ? " published" : " (already latest)"} in ${summary.seconds.toFixed(1)}s\n`
          : `${result.state} in ${summary.seconds.toFixed(1)}s\n`,
      );
    } else log.info(summary, `pipeline ${command} ${result.state}`);
    if (v.clean) await rm(workDir, { recursive: true, force: true });
    return EXIT.ok;
  } catch (err) {
    const cause = err instanceof StepFailedError ? err.cause : err;
    const code =
      err instanceof UsageError
        ? EXIT.usage
        : cause instanceof CancelledError
          ? EXIT.cancelled
          : cause instanceof ValidationError
            ? EXIT.validation
            : cause instanceof PipelineInputError
              ? EXIT.failed
              : isTransient(cause)
                ? EXIT.transient
                : EXIT.failed;
    const step = err instanceof StepFailedError ? err.step : undefined;
    if (bar || err instanceof UsageError) process.stderr.write(`error: ${errorMessage(err)}\n`);
    else log.error({ event: "failed", ...(step ? { step } : {}), exitCode: code, transient: code === EXIT.transient }, errorMessage(err));
    return code;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await store?.close().catch(() => {});
  }
}

// Run when executed directly (node packages/pipeline/dist/cli.js …), not when imported.
const invoked = process.argv[1] ? resolve(process.argv[1]) : "";
if (invoked === resolve(new URL(import.meta.url).pathname) || invoked.endsWith("/glimpse-pipeline")) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(EXIT.failed);
    },
  );
}
