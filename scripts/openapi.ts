/**
 * The OpenAPI 3 document of the REST paths: gnostic's protoc-gen-openapi reads the protos'
 * google.api.http rules, comments and field_behavior (buf.gen.openapi.yaml); this script adds what
 * it cannot — the buf.validate rules as schema constraints, the page_size option, and the error
 * body the gateway really sends (Connect's error JSON, not google.rpc.Status) — and writes
 * packages/api/src/openapi.json, which the gateway serves at /openapi.json and /docs renders.
 *
 *   npx tsx --conditions=source scripts/openapi.ts           # write it (npm run generate does)
 *   npx tsx --conditions=source scripts/openapi.ts --check   # fail when the committed one is stale
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { getExtension, getOption, hasExtension, hasOption, type DescField, type DescMessage, type DescMethod } from "@bufbuild/protobuf";
import type { StringRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { parse } from "yaml";
import { IDENTIFIER_RULES, SERVICES, fieldRules, rulePattern } from "@glimpse/api";
import { page_size as pageSizeOption } from "@glimpse/api/gen/glimpse/api/v1/annotations_pb.js";
import { compileTemplate } from "@glimpse/rpc";
import { count_max, text_max_chars, url_max_chars } from "@glimpse/api/gen/glimpse/api/v1/rules_pb.js";
import { http } from "@glimpse/api/gen/google/api/annotations_pb.js";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));
const OUT = join(ROOT, "packages/api/src/openapi.json");

type Schema = Record<string, unknown> & { properties?: Record<string, Schema>; items?: Schema; required?: string[] };
type Operation = { operationId: string; parameters?: { name: string; in: string; schema: Schema; required?: boolean }[]; responses: Record<string, unknown> };

/** The constraints a field's buf.validate rules state, as JSON Schema keywords. */
function constraints(field: DescField, required: boolean): Schema {
  const rules = fieldRules(field);
  const out: Schema = {};
  if (hasOption(field, pageSizeOption)) {
    // Above max_size is clamped, not refused: no maximum.
    return { minimum: 0, default: getOption(field, pageSizeOption).defaultSize };
  }
  if (!rules) return out;
  const t = rules.type;
  if (t.case === "int32" || t.case === "int64" || t.case === "double" || t.case === "float") {
    const r = t.value as { greaterThan: { case?: string; value?: unknown }; lessThan: { case?: string; value?: unknown } };
    if (r.greaterThan.case === "gte") out["minimum"] = Number(r.greaterThan.value);
    if (r.greaterThan.case === "gt") Object.assign(out, { minimum: Number(r.greaterThan.value), exclusiveMinimum: true });
    if (r.lessThan.case === "lte") out["maximum"] = Number(r.lessThan.value);
    if (r.lessThan.case === "lt") Object.assign(out, { maximum: Number(r.lessThan.value), exclusiveMaximum: true });
    if (t.case === "int32" && hasExtension(t.value, count_max)) Object.assign(out, { minimum: 0, maximum: getExtension(t.value, count_max) });
  }
  if (t.case === "string") Object.assign(out, stringConstraints(t.value, required));
  if (t.case === "repeated") {
    if (t.value.minItems > 0n) out["minItems"] = Number(t.value.minItems);
    if (t.value.maxItems > 0n) out["maxItems"] = Number(t.value.maxItems);
    const items = t.value.items?.type;
    if (items?.case === "string") out["items"] = stringConstraints(items.value, true);
  }
  return out;
}

function stringConstraints(s: StringRules, required: boolean): Schema {
  const out: Schema = {};
  if (s.maxLen > 0n) out["maxLength"] = Number(s.maxLen);
  if (hasExtension(s, text_max_chars)) out["maxLength"] = getExtension(s, text_max_chars);
  if (hasExtension(s, url_max_chars)) out["maxLength"] = getExtension(s, url_max_chars);
  if (s.in.length > 0) out["enum"] = [...s.in];
  if (s.pattern) out["pattern"] = s.pattern;
  for (const rule of Object.values(IDENTIFIER_RULES)) {
    if (!hasExtension(s, rule) || !getExtension(s, rule)) continue;
    // The identifier rules let "" through (a field that needs one is also `required`).
    const source = rulePattern(rule).source;
    out["pattern"] = required ? source : `^$|${source}`;
  }
  return out;
}

const isRequired = (schema: Schema, name: string) => (schema.required ?? []).includes(name);

/** Adds constraints to a property or parameter schema (a list's item constraints to its items). */
function applyTo(target: Schema, c: Schema): void {
  const { items, ...rest } = c;
  // int64 is a string in protobuf JSON: a numeric range does not apply to it.
  if (target["type"] === "string") for (const k of ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]) delete rest[k];
  Object.assign(target, rest);
  if (items) target.items = { ...(target.items ?? {}), ...items };
}

/** Applies a request message's rules to its component schema, and to the nested messages'. */
function constrainSchema(doc: { components: { schemas: Record<string, Schema> } }, m: DescMessage, seen = new Set<string>()): void {
  if (seen.has(m.typeName)) return;
  seen.add(m.typeName);
  // A request sent whole as the body or the query has no schema of its own; its fields' messages do.
  const schema = doc.components.schemas[m.typeName];
  for (const f of m.fields) {
    if (f.message) constrainSchema(doc, f.message, seen);
    const prop = schema?.properties?.[f.name];
    if (prop) applyTo(prop, constraints(f, isRequired(schema!, f.name)));
  }
}

const CONNECT_CODES = [
  "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists", "permission_denied", "resource_exhausted",
  "failed_precondition", "aborted", "out_of_range", "unimplemented", "internal", "unavailable", "data_loss", "unauthenticated",
];

/** The gateway's error body on every path (README, "The API"): Connect's error JSON with google.rpc details. */
const ERROR_SCHEMA: Schema = {
  type: "object",
  description: "Connect's error JSON. A refused field is one google.rpc.BadRequest entry in details (debug.field_violations: field, description, reason).",
  required: ["code"],
  properties: {
    code: { type: "string", enum: CONNECT_CODES },
    message: { type: "string" },
    details: {
      type: "array",
      items: {
        type: "object",
        properties: { type: { type: "string", description: "e.g. google.rpc.BadRequest" }, value: { type: "string", description: "the detail, protobuf binary in base64" }, debug: { type: "object", description: "the detail as JSON" } },
      },
    },
  },
};

export function openapiDocument(): string {
  const tmp = mkdtempSync(join(tmpdir(), "glimpse-openapi-"));
  try {
    execFileSync("npx", ["buf", "generate", "--template", "buf.gen.openapi.yaml", "-o", tmp], { cwd: ROOT, stdio: ["ignore", "inherit", "inherit"] });
    const doc = parse(readFileSync(join(tmp, "openapi.yaml"), "utf8"));
    doc.info.description =
      "Glimpse's REST paths (each RPC's google.api.http rule). The same RPCs answer Connect (JSON or binary), gRPC-Web and gRPC " +
      "at /<package>.<Service>/<Method>. Writes need `Authorization: Bearer <API key>` when keys are configured.";
    doc.servers = [{ url: "/" }];
    doc.components.securitySchemes = { apiKey: { type: "http", scheme: "bearer", description: "An API key (GLIMPSE_API_KEYS)" } };
    doc.components.schemas["connect.Error"] = ERROR_SCHEMA;
    delete doc.components.schemas["google.rpc.Status"];
    delete doc.components.schemas["google.protobuf.Any"];
    const methods = new Map<string, DescMethod>(Object.values(SERVICES).flatMap((s) => s.methods.map((m) => [`${s.name}_${m.name}`, m] as const)));
    for (const m of methods.values()) constrainSchema(doc, m.input);
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, Operation>>)) {
      for (const op of Object.values(ops)) {
        const method = methods.get(op.operationId);
        if (!method) throw new Error(`${op.operationId}: no such RPC`);
        // An additional binding (an earlier path kept beside the AIP one) is the same RPC again:
        // operationIds must be unique, so it is <Service>_<Method>_<n>, n its place among them.
        const rule = getOption(method, http);
        const shape = compileTemplate(path).shape;
        const n = [rule, ...rule.additionalBindings].findIndex((b) => compileTemplate(b.pattern.value as string).shape === shape);
        if (n > 0) op.operationId = `${op.operationId}_${n}`;
        (op.responses["default"] as { content: Record<string, { schema: unknown }> }).content["application/json"]!.schema = { $ref: "#/components/schemas/connect.Error" };
        for (const p of op.parameters ?? []) {
          const field = fieldAt(method.input, p.name);
          if (field) applyTo(p.schema, constraints(field, p.required === true || p.in === "path"));
          else if (p.in === "path") p.schema["pattern"] = rulePattern(p.name === "photo" ? IDENTIFIER_RULES.photoId : IDENTIFIER_RULES.collectionId).source;
        }
      }
    }
    return `${JSON.stringify(doc, null, 2)}\n`;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The request field a query parameter names ("scope.split" for a nested one). */
function fieldAt(message: DescMessage, dotted: string): DescField | undefined {
  let m: DescMessage | undefined = message;
  let field: DescField | undefined;
  for (const part of dotted.split(".")) {
    field = m?.fields.find((f) => f.name === part);
    m = field?.message;
  }
  return field;
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith("openapi.ts")) {
  const text = openapiDocument();
  if (process.argv.includes("--check")) {
    if (readFileSync(OUT, "utf8") !== text) {
      console.error("packages/api/src/openapi.json is stale: run 'npm run generate' and commit it");
      process.exit(1);
    }
    console.log("OpenAPI document is up to date");
  } else {
    writeFileSync(OUT, text);
    console.log(`wrote ${OUT}`);
  }
}
