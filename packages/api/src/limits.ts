import { getExtension, getOption, hasExtension, type DescExtension, type DescMessage } from "@bufbuild/protobuf";
import { predefined, type FieldRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { invalidArgument, type FieldViolation } from "./errors.js";
import { collection_id, collection_name, count_max, dataset_name, dataset_version, image_id, model_version, photo_id, photo_name, run_id, sha256, text_max_chars, url_max_chars } from "./gen/glimpse/api/v1/rules_pb.js";
import * as data from "./gen/glimpse/data/v1/data_service_pb.js";
import * as ranking from "./gen/glimpse/ranking/v1/ranking_service_pb.js";
import { fieldRules } from "./validate.js";

type Kind = NonNullable<FieldRules["type"]["case"]>;
type RulesOf<K extends Kind> = Extract<FieldRules["type"], { case: K }> extends { value: infer V } ? V : never;

/** The buf.validate rules of one field, of the kind expected; throws when the proto lacks them. */
function rulesOf<K extends Kind>(message: DescMessage, name: string, kind: K): RulesOf<K> {
  const field = message.fields.find((f) => f.name === name);
  const rules = field && fieldRules(field);
  if (rules?.type.case !== kind) throw new Error(`${message.typeName}.${name} declares no buf.validate ${kind} rules`);
  return rules.type.value as unknown as RulesOf<K>;
}

/** The top of a count's range: its glimpse.api.v1.count_max rule. */
function countMax(message: DescMessage, name: string): number {
  const r = rulesOf(message, name, "int32");
  if (!hasExtension(r, count_max)) throw new Error(`${message.typeName}.${name} declares no glimpse.api.v1.count_max`);
  return getExtension(r, count_max);
}

/**
 * Request limits shared by servers, the gateway and the docs, read from the `buf.validate`
 * rules in the protos (the servers enforce those rules: validate.ts). Defaults and the pixel
 * limit are not rules: they stay here, and limits.test.ts checks them against the proto comments.
 */
export const LIMITS = {
  queryMaxChars: getExtension(rulesOf(ranking.SearchImagesRequestSchema, "query", "string"), text_max_chars),
  topKDefault: 10,
  topKMax: countMax(ranking.SearchImagesRequestSchema, "top_k"),
  demoTopKDefault: 8,
  demoTopKMax: countMax(ranking.DemoSearchRequestSchema, "top_k"),
  captionsTopKDefault: 5,
  imageMaxBytes: Number(rulesOf(ranking.RankUploadedImageRequestSchema, "image", "bytes").maxLen),
  /** Checked when decoding (not a rule: the proto comments state it). */
  imageMaxPixels: 40_000_000,
  batchMaxQueries: Number(rulesOf(ranking.BatchSearchImagesRequestSchema, "queries", "repeated").maxItems),
  candidatesMax: Number(rulesOf(ranking.RankCandidatesRequestSchema, "candidate_image_ids", "repeated").maxItems),
  urlMaxChars: getExtension(rulesOf(data.PipelineParamsSchema, "images_url", "string"), url_max_chars),
} as const;

/**
 * The regular expression of one of Glimpse's predefined rules (glimpse/api/v1/rules.proto): the
 * `this.matches(r'…')` in its CEL. Throws unless there is exactly one, so a rule written another
 * way fails at startup rather than leave its pattern here behind.
 */
export function rulePattern(rule: DescExtension): RegExp {
  const sources = getOption(rule, predefined).cel.flatMap((c) => [...c.expression.matchAll(/\bthis\.matches\(r'([^']*)'\)/g)].map((m) => m[1]!));
  if (sources.length !== 1) throw new Error(`${rule.typeName}: expected one this.matches(r'…') in its rule, found ${sources.length}`);
  return new RegExp(sources[0]!);
}

/** The predefined rule (glimpse/api/v1/rules.proto) that defines each identifier's shape. */
export const IDENTIFIER_RULES = {
  dataset: dataset_name,
  datasetVersion: dataset_version,
  modelVersion: model_version,
  imageId: image_id,
  runId: run_id,
  sha256: sha256,
  collectionId: collection_id,
  collectionName: collection_name,
  photoName: photo_name,
  photoId: photo_id,
} as const;

/**
 * Identifier shapes, for the checks the servers and tools make beyond a request's rules (names
 * in the object store, CLI arguments, ...): the regular expressions of IDENTIFIER_RULES, so a
 * shape is written once, in rules.proto. (An identifier rule lets an empty string pass, except
 * image_id's; these patterns never match one.)
 */
export const PATTERNS = Object.freeze(Object.fromEntries(Object.entries(IDENTIFIER_RULES).map(([name, rule]) => [name, rulePattern(rule)]))) as {
  readonly [K in keyof typeof IDENTIFIER_RULES]: RegExp;
};

/**
 * Collects the problems a handler finds beyond the proto's rules (page tokens, a training
 * configuration's overrides, …) before answering, so a caller fixes them all in one round trip.
 */
export class Violations {
  readonly list: FieldViolation[] = [];

  add(field: string, description: string, reason = "INVALID"): this {
    this.list.push({ field, description, reason });
    return this;
  }

  /** Throws INVALID_ARGUMENT with all collected violations, if any. */
  throwIfAny(): void {
    if (this.list.length > 0) throw invalidArgument(this.list);
  }
}
