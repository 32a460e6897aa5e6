/**
 * The command line as a client of the gateway: search, caption, train (--watch), runs, models
 * (list, promote, rollback) and datasets. Tables for people, `--json` (protobuf JSON, snake_case)
 * for scripts; the URL and key as for every command (client.ts). Collections: collections.ts.
 */
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { fromJson, type DescEnum, type JsonValue } from "@bufbuild/protobuf";
import { data, dataset as ds, ranking, training } from "@glimpse/api";
import { STREAM_CALL } from "./client.js";
import { EXIT, UsageError, clock, commandOf, dateTime, durationMs, fields, positionals, printJson, table, progressOut, type Command, type Ctx } from "./command.js";

const command = commandOf("glimpse");

function count(v: string | undefined, flag: string): number {
  if (v === undefined) return 0;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag} must be a whole number (got ${JSON.stringify(v)})`);
  return n;
}

const score = (x: number) => x.toFixed(3);

// ---- search and caption ---------------------------------------------------------------------

const searchCommand = command('search "<text>" [--top-k N]', { "top-k": { type: "string" } }, async (ctx, v, p) => {
  const query = positionals(p, 1, Infinity, "the text to search for").join(" ");
  const res = await ctx.clients.ranking.searchImages({ query, topK: count(v["top-k"], "--top-k") });
  if (ctx.json) printJson(ctx, ranking.SearchImagesResponseSchema, res);
  // The order follows rank_score (cosine plus the query-bank bias); the cosine beside it.
  else ctx.out(table(["rank", "image", "score", "cosine"], res.results.map((h) => [String(h.rank), h.imageId, score(h.rankScore), score(h.score)]), [0, 2, 3]));
  return EXIT.ok;
});

const captionCommand = command("caption (<photo file> | <gallery image id>) [--top-k N]", { "top-k": { type: "string" } }, async (ctx, v, p) => {
  const [what] = positionals(p, 1, 1, "a photo file or a gallery image id");
  const topK = count(v["top-k"], "--top-k");
  let image: ranking.SearchCaptionsRequest["image"];
  try {
    image = { case: "imageBytes", value: await readFile(resolve(ctx.cwd, what!)) };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    image = { case: "imageId", value: what! }; // not a file: a gallery id
  }
  const res = await ctx.clients.ranking.searchCaptions({ image, topK });
  if (ctx.json) printJson(ctx, ranking.SearchCaptionsResponseSchema, res);
  else ctx.out(table(["rank", "score", "cosine", "caption", "of image"], res.results.map((h) => [String(h.rank), score(h.rankScore), score(h.score), h.text, h.imageId]), [0, 1, 2]));
  return EXIT.ok;
});

// ---- training -------------------------------------------------------------------------------

/** "TRAINING_STATE_SUCCEEDED" → "succeeded", from the enum's descriptor. */
const stateName = (schema: DescEnum, n: number): string => (schema.values.find((v) => v.number === n)?.localName ?? "unknown").toLowerCase();
const trainingState = (s: training.TrainingState) => stateName(training.TrainingStateSchema, s);
const finished = (s: training.TrainingState) => s === training.TrainingState.SUCCEEDED || s === training.TrainingState.FAILED || s === training.TrainingState.STOPPED;

/** "epoch 2/4 [########------------] step 310/620 · loss 1.234 · ETA 3:05" */
export function trainingLine(r: training.TrainingRun, width = 20): string {
  let line = `${trainingState(r.state)}${r.phase ? ` ${r.phase}` : ""}`;
  if (r.totalEpochs > 0) line += ` · epoch ${r.epoch}/${r.totalEpochs}`;
  const total = Number(r.totalSteps);
  if (total > 0) {
    const full = Math.round(Math.min(1, Number(r.step) / total) * width);
    line += ` [${"#".repeat(full)}${"-".repeat(width - full)}] step ${r.step}/${total}`;
  }
  if (r.loss > 0) line += ` · loss ${r.loss.toFixed(3)}`;
  if (r.eta && !finished(r.state)) line += ` · ETA ${clock(durationMs(r.eta))}`;
  return line;
}

function describeRun(r: training.TrainingRun): string {
  const m = r.devMetrics;
  const pairs: [string, string][] = [
    ["run", r.runId],
    ["state", trainingState(r.state)],
    ["dataset", r.datasetVersion],
    ["model", r.modelVersion || "(none registered)"],
  ];
  if (m) pairs.push(["dev R@10", `text→image ${m.t2iR10.toFixed(1)}, image→text ${m.i2tR10.toFixed(1)}`]);
  if (r.promotion) pairs.push(["promotion", `${r.promotion.promoted ? "promoted" : "not promoted"}${r.promotion.reason ? `: ${r.promotion.reason}` : ""}`]);
  if (r.error) pairs.push(["error", r.error]);
  return fields(pairs);
}

/** `--set key=value`: a trainer override; the value is JSON when it parses as JSON, else a string. */
function override(kv: string): [string, JsonValue] {
  const i = kv.indexOf("=");
  if (i <= 0) throw new UsageError(`--set wants key=value (got ${JSON.stringify(kv)})`);
  const raw = kv.slice(i + 1);
  try {
    return [kv.slice(0, i), JSON.parse(raw) as JsonValue];
  } catch {
    return [kv.slice(0, i), raw];
  }
}

const trainCommand = command(
  "train [--config <TrainingConfig.json>] [--epochs N] [--batch-size N] [--image-encoder <name>] [--dataset-version <v>] [--promote] [--set key=value]… [--watch]",
  {
    config: { type: "string" },
    epochs: { type: "string" },
    "batch-size": { type: "string" },
    "image-encoder": { type: "string" },
    "dataset-version": { type: "string" },
    promote: { type: "boolean" },
    set: { type: "string", multiple: true },
    watch: { type: "boolean" },
  },
  async (ctx, v, p) => {
    positionals(p, 0, 0, "");
    const json: Record<string, JsonValue> = v.config ? (JSON.parse(await readFile(resolve(ctx.cwd, v.config), "utf8")) as Record<string, JsonValue>) : {};
    if (v.epochs !== undefined) json["epochs"] = count(v.epochs, "--epochs");
    if (v["batch-size"] !== undefined) json["batch_size"] = count(v["batch-size"], "--batch-size");
    if (v["image-encoder"] !== undefined) json["image_encoder"] = v["image-encoder"];
    if (v["dataset-version"] !== undefined) json["dataset_version"] = v["dataset-version"];
    if (v.promote) json["promote"] = true;
    if (v.set?.length) json["overrides"] = { ...((json["overrides"] as Record<string, JsonValue>) ?? {}), ...Object.fromEntries(v.set.map(override)) };
    let config: training.TrainingConfig;
    try {
      config = fromJson(training.TrainingConfigSchema, json);
    } catch (e) {
      throw new UsageError(`the training config: ${(e as Error).message}`);
    }
    const { trainingRun: run } = await ctx.clients.training.createTrainingRun({ trainingRun: { config } });
    if (!v.watch) {
      if (ctx.json) printJson(ctx, training.TrainingRunSchema, run!);
      else ctx.out(`${describeRun(run!)}\n\nfollow it with: glimpse runs`);
      return EXIT.ok;
    }
    const final = await watchRun(ctx, run!.name);
    if (ctx.json) printJson(ctx, training.TrainingRunSchema, final);
    else ctx.out(describeRun(final));
    return final.state === training.TrainingState.SUCCEEDED ? EXIT.ok : EXIT.failed;
  },
);

/** Follows a run ("trainingRuns/…") to its end, drawing its progress on stderr; the run as it ended. */
async function watchRun(ctx: Ctx, name: string): Promise<training.TrainingRun> {
  const progress = progressOut(ctx.io.stderr);
  let last: training.TrainingRun | undefined;
  try {
    for await (const msg of ctx.clients.training.watchTrainingRun({ name }, STREAM_CALL)) {
      if (!msg.trainingRun) continue;
      last = msg.trainingRun;
      const line = trainingLine(last);
      progress.show(line, line.replace(/ · ETA .*$/, "")); // a log gets a line when more than the ETA moved
      if (finished(last.state)) break;
    }
  } finally {
    progress.end();
  }
  if (!last) throw new Error(`the watch of ${name} ended without a message`);
  return last;
}

// ---- runs -----------------------------------------------------------------------------------

const runsCommand = command("runs [--pipeline] [--page-size N]", { pipeline: { type: "boolean" }, "page-size": { type: "string" } }, async (ctx, v, p) => {
  positionals(p, 0, 0, "");
  const pageSize = count(v["page-size"], "--page-size");
  if (v.pipeline) {
    const res = await ctx.clients.data.listPipelineRuns({ pageSize });
    if (ctx.json) printJson(ctx, data.ListPipelineRunsResponseSchema, res);
    else ctx.out(table(["run", "state", "dataset version", "created", "error"], res.runs.map((r) => [r.runId, stateName(data.RunStateSchema, r.state), r.datasetVersion, dateTime(r.createTime), r.error])));
    return EXIT.ok;
  }
  const res = await ctx.clients.training.listTrainingRuns({ pageSize });
  if (ctx.json) printJson(ctx, training.ListTrainingRunsResponseSchema, res);
  else ctx.out(table(["run", "state", "epoch", "model", "created", "error"], res.runs.map((r) => [r.runId, trainingState(r.state), r.totalEpochs ? `${r.epoch}/${r.totalEpochs}` : "", r.modelVersion, dateTime(r.createTime), r.error])));
  return EXIT.ok;
});

// ---- models ---------------------------------------------------------------------------------

const modelsList = command("models [list]", {}, async (ctx, _v, p) => {
  positionals(p, 0, 1, "");
  const res = await ctx.clients.ranking.listModelVersions({ pageSize: 100 });
  if (ctx.json) printJson(ctx, ranking.ListModelVersionsResponseSchema, res);
  else {
    const metric = (m: ranking.ModelInfo, k: string) => (m.metrics[k] === undefined ? "" : m.metrics[k].toFixed(1));
    ctx.out(table(["version", "", "backbone", "test t2i R@10", "test i2t R@10", "created"], res.models.map((m) => [m.version, m.production ? "production" : "", m.backbone, metric(m, "test.t2i_r10"), metric(m, "test.i2t_r10"), dateTime(m.createTime)]), [3, 4]));
  }
  return EXIT.ok;
});

const modelsPromote = command("models promote <version>", {}, async (ctx, _v, p) => {
  const [, version] = positionals(p, 2, 2, "the version to promote");
  return promote(ctx, version!, "promoted");
});

const modelsRollback = command("models rollback", {}, async (ctx, _v, p) => {
  positionals(p, 1, 1, "");
  const status = await ctx.clients.ranking.getModelStatus({});
  const previous = status.previousProductionVersions[0];
  if (!previous) {
    ctx.err(`error: nothing to roll back to: production (${status.productionVersion || "none"}) has no earlier version`);
    return EXIT.failed;
  }
  return promote(ctx, previous, `rolled back from ${status.productionVersion} to`);
});

async function promote(ctx: Ctx, version: string, what: string): Promise<number> {
  const res = await ctx.clients.ranking.promoteModel({ version });
  if (ctx.json) printJson(ctx, ranking.PromoteModelResponseSchema, res);
  else ctx.out(`${what} ${res.model?.version ?? version}: Ranking loads it and swaps when its index is ready (glimpse models shows production)`);
  return EXIT.ok;
}

const modelsCommand: Command = (argv, io) => {
  const sub = argv[0];
  if (sub === "promote") return modelsPromote(argv, io);
  if (sub === "rollback") return modelsRollback(argv, io);
  return modelsList(argv, io);
};

// ---- datasets -------------------------------------------------------------------------------

const datasetsCommand = command("datasets [<dataset>]", {}, async (ctx, _v, p) => {
  const [dataset] = positionals(p, 0, 1, "");
  const res = await ctx.clients.data.listDatasetVersions({ dataset: dataset ?? "", pageSize: 100 });
  if (ctx.json) printJson(ctx, data.ListDatasetVersionsResponseSchema, res);
  else {
    const split = (d: ds.DatasetVersion, s: ds.Split) => String(d.splits.find((x) => x.split === s)?.images ?? "");
    ctx.out(table(["dataset", "version", "", "images", "train", "dev", "test", "published"], res.versions.map((d) => [d.dataset, d.version, d.latest ? "latest" : "", String(d.imageCount), split(d, ds.Split.TRAIN), split(d, ds.Split.DEV), split(d, ds.Split.TEST), dateTime(d.publishTime)]), [3, 4, 5, 6]));
  }
  return EXIT.ok;
});

export const COMMANDS: Record<string, Command> = {
  search: searchCommand,
  caption: captionCommand,
  train: trainCommand,
  runs: runsCommand,
  models: modelsCommand,
  datasets: datasetsCommand,
};
