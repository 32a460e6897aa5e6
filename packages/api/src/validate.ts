/**
 * Request validation from the proto: the `buf.validate` rules on the fields (protovalidate) are
 * the only statement of the request limits. Every server checks each request message with
 * them before its handler (packages/rpc's server puts the check in front of each method) and
 * answers INVALID_ARGUMENT with one google.rpc.BadRequest field violation per broken rule.
 *
 * A violation's reason is the rule's google.rpc reason:
 * - Glimpse's own rules (CEL, predefined rules in glimpse/api/v1/rules.proto: text queries,
 *   identifiers, archive URLs) carry it as their id: "TOO_LONG", "BAD_FORMAT"; a message-level
 *   rule, which has no field of its own, prefixes the field it is reported on:
 *   "candidate_texts.EXCLUSIVE".
 * - protovalidate's standard rules map by rule id (STANDARD_REASONS): a range → OUT_OF_RANGE, a
 *   pattern → BAD_FORMAT, required / min_len / min_items → REQUIRED, and so on.
 * Field paths are the proto names, dotted, with list indexes: "scope.dataset_version", "queries[1]".
 */
import { createRegistry, getOption, type DescField, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { reflect, type Path, type ReflectList, type ReflectMessage } from "@bufbuild/protobuf/reflect";
import { createValidator, type Violation } from "@bufbuild/protovalidate";
import { field as fieldRulesExt, type FieldRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { invalidArgument, type FieldViolation } from "./errors.js";
import { file_glimpse_api_v1_rules } from "./gen/glimpse/api/v1/rules_pb.js";

/**
 * The registry names Glimpse's predefined rules, which the validator must know to evaluate them.
 * Patterns (string.pattern, CEL matches()) run on the platform's RegExp rather than the default
 * pure-JS RE2: several times faster per request, and the protos' patterns are written in the
 * subset both engines read alike (validate.test.ts checks they compile and agree).
 */
const regexCache = new Map<string, RegExp>();
export function nativeRegexMatch(pattern: string, value: string): boolean {
  let re = regexCache.get(pattern);
  if (!re) regexCache.set(pattern, (re = new RegExp(pattern, "u")));
  return re.test(value);
}
const validator = createValidator({ registry: createRegistry(file_glimpse_api_v1_rules), regexMatch: nativeRegexMatch });

/** google.rpc reasons of protovalidate's standard rules, by rule id (numeric ranges: rangeReason). */
const STANDARD_REASONS: Readonly<Record<string, string>> = {
  required: "REQUIRED",
  "string.min_len": "REQUIRED",
  "bytes.min_len": "REQUIRED",
  "repeated.min_items": "REQUIRED",
  "string.max_len": "TOO_LONG",
  "bytes.max_len": "TOO_LARGE",
  "repeated.max_items": "TOO_MANY",
  "string.pattern": "BAD_FORMAT",
  "string.in": "BAD_VALUE",
  "enum.defined_only": "BAD_ENUM",
};

/** "int32.gte_lte", "double.gt_lte", "int64.gte", …: a number outside its range. */
const RANGE_RULE = /^(?:u?int(?:32|64)|s(?:fixed|int)(?:32|64)|fixed(?:32|64)|float|double)\.(?:gt|gte|lt|lte)(?:_|$)/;
/** Glimpse's own rule ids: an optional field path, then the reason. */
const OWN_RULE = /^(?:([a-z0-9_.[\]]+)\.)?([A-Z][A-Z0-9_]*)$/;

/** The violations of `message` against its rules: empty when it is valid. */
export function requestViolations<D extends DescMessage>(schema: D, message: MessageShape<D>): FieldViolation[] {
  const result = validator.validate(schema, message);
  if (result.kind === "valid") return [];
  // A rule that does not compile or evaluate is a bug in the proto, not the caller's problem.
  if (result.kind === "error") throw result.error;
  return result.violations.map((v) => fieldViolation(schema, message, v));
}

/** Throws INVALID_ARGUMENT with every violation of `message`, if any. */
export function checkRequest<D extends DescMessage>(schema: D, message: MessageShape<D>): void {
  const violations = requestViolations(schema, message);
  if (violations.length > 0) throw invalidArgument(violations);
}

/** The buf.validate rules a field declares, if any. */
export function fieldRules(field: DescField): FieldRules | undefined {
  return getOption(field, fieldRulesExt);
}

function fieldViolation(schema: DescMessage, message: object, v: Violation): FieldViolation {
  const path = pathString(v.field);
  const own = OWN_RULE.exec(v.ruleId);
  if (own) {
    const field = [path, own[1]].filter(Boolean).join(".");
    return { field, description: v.message, reason: own[2]! };
  }
  const reason = STANDARD_REASONS[v.ruleId] ?? (RANGE_RULE.test(v.ruleId) ? "OUT_OF_RANGE" : "INVALID");
  return { field: path, description: describe(v, reason, valueAt(schema, message, v.field)), reason };
}

/** "scope.dataset_version", "queries[1]": proto names, as the earlier checks named fields. */
function pathString(path: Path): string {
  let out = "";
  for (const el of path) {
    if (el.kind === "field" || el.kind === "oneof") out += (out ? "." : "") + el.name;
    else if (el.kind === "list_sub") out += `[${el.index}]`;
    else if (el.kind === "map_sub") out += `[${JSON.stringify(String(el.key))}]`;
    else out += `[${el.typeName}]`;
  }
  return out;
}

/** The value a violation is about (undefined for a oneof or an unset field). */
function valueAt(schema: DescMessage, message: object, path: Path): unknown {
  let cur: unknown = reflect(schema, message as MessageShape<DescMessage>);
  for (const el of path) {
    if (el.kind === "field") cur = (cur as ReflectMessage).get(el);
    else if (el.kind === "list_sub") cur = (cur as ReflectList).get(el.index);
    else return undefined;
  }
  return cur;
}

/** The message holding the violated standard rule (Int32Rules, StringRules, …). */
function ruleParent(v: Violation): Record<string, unknown> | undefined {
  const field = [...v.field].reverse().find((el) => el.kind === "field");
  let cur: unknown = field ? fieldRules(field) : undefined;
  for (const el of v.rule.slice(0, -1)) {
    if (cur === undefined || el.kind !== "field") return undefined;
    const obj = cur as Record<string, unknown>;
    cur = el.oneof ? (obj[el.oneof.localName] as { value?: unknown }).value : obj[el.localName];
  }
  return cur as Record<string, unknown> | undefined;
}

const bound = (oneof: unknown): { case?: string; value?: unknown } => (oneof ?? {}) as { case?: string; value?: unknown };
const show = (x: unknown): string => (typeof x === "string" ? JSON.stringify(x) : String(x));

/** A description in the earlier checks' words; protovalidate's own message otherwise. */
function describe(v: Violation, reason: string, value: unknown): string {
  const fallback = v.message.replace(/^value /, "");
  const rules = ruleParent(v);
  const size = (x: unknown) => (typeof x === "string" ? [...x].length : x instanceof Uint8Array ? x.length : (x as ReflectList | undefined)?.size);
  switch (reason) {
    case "REQUIRED":
      return "is required";
    case "OUT_OF_RANGE": {
      const lo = bound(rules?.["greaterThan"]);
      const hi = bound(rules?.["lessThan"]);
      if (lo.case === "gte" && hi.case === "lte") return `must be between ${lo.value} and ${hi.value} (got ${value})`;
      if (lo.case === "gt" && hi.case === "lte") return `must be in (${lo.value}, ${hi.value}] (got ${value})`;
      return `${fallback} (got ${value})`;
    }
    case "TOO_LONG":
      return `must be at most ${rules?.["maxLen"]} characters (got ${size(value)})`;
    case "TOO_LARGE":
      return `must be at most ${rules?.["maxLen"]} bytes (got ${size(value)})`;
    case "TOO_MANY":
      return `must have at most ${rules?.["maxItems"]} entries (got ${size(value)})`;
    case "BAD_FORMAT":
      return `must match ${rules?.["pattern"]}`;
    case "BAD_VALUE":
      return `must be one of ${((rules?.["in"] as unknown[]) ?? []).map(show).join(", ")} (got ${show(value)})`;
    case "BAD_ENUM":
      return `unknown value ${value}`;
    default:
      return fallback;
  }
}
