/**
 * The request's TrainingConfig → the trainer's Config document (model/glimpse_model/config.py).
 *
 * The trainer's keys, types and defaults come from its schema, model/glimpse_model/config.schema.json,
 * which config.py builds its `Config` from: trainer-config.schema.json here is an identical copy (the
 * service's image holds no model/), and trainer-config.test.ts fails when the two differ.
 */
import { requestViolations, training, Violations } from "@glimpse/api";
import { create, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { DEFAULT_DATASET } from "@glimpse/layout/datasets";
import trainerSchema from "./trainer-config.schema.json" with { type: "json" };

export type KeyType = "int" | "float" | "bool" | "str";

const KEY_TYPES = { integer: "int", number: "float", boolean: "bool", string: "str" } as const;

/** Every field of glimpse_model.config.Config with its Python type (from the trainer's schema). */
export const TRAINER_KEYS: Readonly<Record<string, KeyType>> = Object.fromEntries(
  Object.entries(trainerSchema.properties).map(([key, p]) => [key, KEY_TYPES[p.type as keyof typeof KEY_TYPES]]),
);

/**
 * The trainer's defaults (the shipped model's recipe) that the service reports before the trainer
 * says otherwise and the proto documents; the test checks them against the proto.
 */
export const TRAINER_DEFAULTS = {
  epochs: trainerSchema.properties.epochs.default,
  batch_size: trainerSchema.properties.batch_size.default,
  lr: trainerSchema.properties.lr.default,
  phase2_batch_size: trainerSchema.properties.phase2_batch_size.default,
  seed: trainerSchema.properties.seed.default,
} as const;

/** Phase-2 epochs when fine_tune_backbone is set and overrides name none. */
const DEFAULT_PHASE2_EPOCHS = 3;

/** Keys the service sets itself (paths, the store, bookkeeping): never from a request. */
const MANAGED = new Set([
  "run_name", "out_dir", "cache_dir", "resume", "progress", "events_to_store", "events_key", "stop_after_epochs",
  "source", "flickr8k_dir", "store", "store_dir", "bucket", "dataset", "dataset_version",
  "weights_source", "dataset_source", "dataset_version_resolved", "git_commit", "loss_choice_note",
  "soup_of",
]);

/** Paths on the service's machine: never from a request. */
const PATHS = new Set(["init_from"]);

/** Keys a TrainingConfig field owns: overrides must use the field. */
const FIRST_CLASS: Readonly<Record<string, string>> = {
  epochs: "epochs",
  batch_size: "batch_size",
  lr: "learning_rate",
  backbone: "image_encoder",
  loss: "loss",
  seed: "seed",
  device: "device",
};

/** Values a string key may take, where the trainer accepts only a few. */
const STRING_CHOICES: Readonly<Record<string, readonly string[]>> = {
  image_head: ["mean", "attn"],
  text_encoder: ["bilstm", "minilm_l6"],
  phase2_mode: ["images", "cached"],
  // A path here would be torch.load()ed (a pickle) from the service's filesystem: not from a request.
  backbone_weights: ["auto", "none"],
  train_split: ["train", "dev", "test"],
  dev_split: ["train", "dev", "test"],
};

/** A zero seed means the trainer's own default (the shipped model's seed), as the proto says. */
export const DEFAULT_SEED = TRAINER_DEFAULTS.seed;

/**
 * The quality gate's default metric (model/glimpse_model/promotion.py DEFAULT_METRIC). The metrics
 * a request may name and the margin's range are the proto's rules on TrainingConfig.
 */
export const DEFAULT_PROMOTION_METRIC = "rsum";

const LOSS_NAMES: Readonly<Record<number, string | undefined>> = {
  [training.Loss.UNSPECIFIED]: undefined,
  [training.Loss.INFONCE]: "infonce",
  [training.Loss.VSE_HARDEST]: "vsepp",
};

/** A validated request, ready for an executor. */
export interface TrainingPlan {
  dataset: string;
  /** Empty = resolve to the latest published version. */
  datasetVersion: string;
  /** The trainer Config document (no managed keys): request fields + overrides. */
  trainerConfig: Record<string, JsonValue>;
  /** Phase-1 and phase-2 epochs, for progress. */
  epochs: number;
  phase2Epochs: number;
  batchSize: number;
  phase2BatchSize: number;
  promote: boolean;
  /** The gate's metric and margin (defaults filled in; meaningful when promote is set). */
  promotionMetric: string;
  promotionMargin: number;
}

/**
 * Checks a TrainingConfig whole, all problems at once (INVALID_ARGUMENT with one BadRequest
 * violation per field): the proto's buf.validate rules (ranges, names, choices, the promotion
 * gate's settings) and what no rule can state (overrides against the trainer's own keys and
 * types), then builds the trainer's document. StartTraining's handler calls it instead of the
 * server's check before the method, so a caller sees both kinds of problem in one answer.
 */
export function planTraining(config: training.TrainingConfig | undefined, field = "config"): TrainingPlan {
  const c = config ?? create(training.TrainingConfigSchema);
  const v = new Violations();
  for (const x of requestViolations(training.TrainingConfigSchema, c)) v.add(`${field}.${x.field}`, x.description, x.reason);
  const doc: Record<string, JsonValue> = {};

  const epochs = c.epochs || TRAINER_DEFAULTS.epochs;
  if (c.epochs) doc["epochs"] = epochs;
  const batchSize = c.batchSize || TRAINER_DEFAULTS.batch_size;
  if (c.batchSize) doc["batch_size"] = batchSize;
  if (c.learningRate) doc["lr"] = c.learningRate;
  const dataset = c.dataset || DEFAULT_DATASET;
  const datasetVersion = c.datasetVersion;
  if (c.imageEncoder) doc["backbone"] = c.imageEncoder;
  const loss = LOSS_NAMES[c.loss];
  if (loss) doc["loss"] = loss;
  doc["seed"] = c.seed === 0n ? DEFAULT_SEED : Number(c.seed);
  if (c.device) doc["device"] = c.device;
  const promote = c.promote;
  const metric = c.promotionMetric;
  const margin = c.promotionMargin;

  const overrides = checkOverrides(c.overrides, `${field}.overrides`, v);
  let phase2Epochs = 0;
  if (c.fineTuneBackbone) {
    phase2Epochs = typeof overrides["phase2_epochs"] === "number" && overrides["phase2_epochs"] > 0 ? overrides["phase2_epochs"] : DEFAULT_PHASE2_EPOCHS;
  } else if (typeof overrides["phase2_epochs"] === "number" && overrides["phase2_epochs"] > 0) {
    v.add(`${field}.overrides.phase2_epochs`, "needs fine_tune_backbone: true", "CONFLICT");
  }
  v.throwIfAny();

  Object.assign(doc, overrides);
  doc["phase2_epochs"] = phase2Epochs;
  const phase2BatchSize = typeof overrides["phase2_batch_size"] === "number" ? overrides["phase2_batch_size"] : TRAINER_DEFAULTS.phase2_batch_size;
  return {
    dataset,
    datasetVersion,
    trainerConfig: doc,
    epochs,
    phase2Epochs,
    batchSize,
    phase2BatchSize,
    promote,
    promotionMetric: metric || DEFAULT_PROMOTION_METRIC,
    promotionMargin: margin,
  };
}

function checkOverrides(overrides: JsonObject | undefined, field: string, v: Violations): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const [key, value] of Object.entries(overrides ?? {})) {
    const path = `${field}.${key}`;
    const type = TRAINER_KEYS[key];
    if (type === undefined) {
      v.add(path, "is not a trainer hyper-parameter (see model/README.md and glimpse_model/config.py)", "UNKNOWN_KEY");
      continue;
    }
    if (FIRST_CLASS[key]) {
      v.add(path, `set config.${FIRST_CLASS[key]} instead`, "CONFLICT");
      continue;
    }
    if (MANAGED.has(key)) {
      v.add(path, "is set by the Training service", "NOT_ALLOWED");
      continue;
    }
    if (PATHS.has(key)) {
      v.add(path, "is a path on the service's machine and cannot come from a request", "NOT_ALLOWED");
      continue;
    }
    const problem = typeProblem(value, type);
    if (problem) {
      v.add(path, problem, "BAD_TYPE");
      continue;
    }
    const choices = STRING_CHOICES[key];
    if (choices && !choices.includes(value as string)) {
      v.add(path, `must be one of ${choices.map((c) => JSON.stringify(c)).join(", ")} (got ${JSON.stringify(value)})`, "BAD_VALUE");
      continue;
    }
    if (type === "int" && (value as number) < 0) {
      v.add(path, `must not be negative (got ${String(value)})`, "OUT_OF_RANGE");
      continue;
    }
    out[key] = value;
  }
  return out;
}

function typeProblem(value: JsonValue, type: KeyType): string | undefined {
  switch (type) {
    case "int":
      return typeof value === "number" && Number.isSafeInteger(value) ? undefined : `must be an integer (got ${JSON.stringify(value)})`;
    case "float":
      return typeof value === "number" && Number.isFinite(value) ? undefined : `must be a number (got ${JSON.stringify(value)})`;
    case "bool":
      return typeof value === "boolean" ? undefined : `must be true or false (got ${JSON.stringify(value)})`;
    case "str":
      return typeof value === "string" ? undefined : `must be a string (got ${JSON.stringify(value)})`;
  }
}
