import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { hasExtension, type DescExtension } from "@bufbuild/protobuf";
import type { StringRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { url_max_chars } from "./gen/glimpse/api/v1/rules_pb.js";
import { IDENTIFIER_RULES, LIMITS, PATTERNS } from "./limits.js";
import { requestMessages } from "./services.js";
import { fieldRules } from "./validate.js";

const proto = (path: string) => readFileSync(fileURLToPath(new URL(`../../../proto/glimpse/${path}`, import.meta.url)), "utf8");

/** A field's string rules (its items' for a list), if any. */
function stringRules(rules: NonNullable<ReturnType<typeof fieldRules>>): StringRules | undefined {
  const r = rules.type.case === "repeated" ? rules.type.value.items : rules;
  return r?.type.case === "string" ? r.type.value : undefined;
}

/** The shapes a field may carry: the identifier rules (PATTERNS' names), and the archive URL rule. */
const SHAPE_RULES: [string, DescExtension][] = [...Object.entries(IDENTIFIER_RULES), ["url", url_max_chars]];
const ruleKind = (r: StringRules): string | undefined => SHAPE_RULES.find(([, ext]) => hasExtension(r, ext))?.[0];

/**
 * LIMITS and PATTERNS are read from the protos' buf.validate rules (limits.ts); what is not a
 * rule (defaults, the pixel limit) is stated in the proto comments: these tests read both.
 */
describe("limits stated in the proto comments match the ones the servers enforce", () => {
  const rankingProto = proto("ranking/v1/ranking_service.proto");
  const dataProto = proto("data/v1/data_service.proto");

  it("RankingService: query length, top_k, image bytes and pixels, image_id", () => {
    expect(rankingProto).toContain(`a text query is 1..${LIMITS.queryMaxChars} characters after trimming`);
    expect(rankingProto).toContain(`top_k is 1..${LIMITS.topKMax} (0 means ${LIMITS.topKDefault})`);
    expect(rankingProto).toContain(
      `at most ${LIMITS.imageMaxBytes / (1024 * 1024)} MiB and ${LIMITS.imageMaxPixels / 1_000_000} megapixels`,
    );
    expect(rankingProto).toContain(`an image_id matches ${PATTERNS.imageId.source}`);
  });

  it("DataService: source URL length", () => {
    expect(dataProto).toContain(`http(s):// or file:// (max ${LIMITS.urlMaxChars} chars)`);
  });
});

describe("LIMITS and PATTERNS are the protos' rules", () => {
  /** Each request field (nested messages included) with its rules. */
  const fields = requestMessages().flatMap((message) =>
    message.fields.flatMap((f) => {
      const rules = fieldRules(f);
      return rules ? [{ message, field: f, name: f.name, rules }] : [];
    }),
  );

  it("every pattern is one of PATTERNS (or the source URL's), so an identifier has one shape everywhere", () => {
    const byField: Record<string, string> = {};
    for (const { message, name, rules } of fields) {
      const r = stringRules(rules);
      const kind = r && ruleKind(r);
      // A field's shape is one of the identifier rules (or the URL rule), never a pattern of its own.
      if (!kind && !r?.pattern) continue;
      expect(kind, `${message.typeName}.${name}: ${r?.pattern}`).toBeDefined();
      byField[`${message.typeName}.${name}`] = kind!;
    }
    expect(byField).toMatchObject({
      "glimpse.ranking.v1.Scope.dataset_version": "datasetVersion",
      "glimpse.ranking.v1.SearchCaptionsRequest.image_id": "imageId",
      "glimpse.ranking.v1.RankCandidatesRequest.candidate_image_ids": "imageId",
      "glimpse.ranking.v1.BuildIndexRequest.model_version": "modelVersion",
      "glimpse.data.v1.RegisterDatasetVersionRequest.version": "datasetVersion",
      "glimpse.data.v1.PipelineParams.dataset": "dataset",
      "glimpse.data.v1.PipelineParams.captions_sha256": "sha256",
      "glimpse.data.v1.CancelPipelineRunRequest.run_id": "runId",
      "glimpse.training.v1.StopTrainingRequest.run_id": "runId",
    });
  });

  it("every top_k and page_size bound is one of LIMITS", () => {
    for (const { message, name, rules } of fields) {
      if (rules.type.case !== "int32" || rules.type.value.lessThan.case !== "lte") continue;
      const max = rules.type.value.lessThan.value;
      if (name.startsWith("top_k")) expect([LIMITS.topKMax, LIMITS.demoTopKMax], `${message.typeName}.${name}`).toContain(max);
      else if (name === "page_size") expect([LIMITS.pageSizeMax, LIMITS.samplesPageSizeMax], `${message.typeName}.${name}`).toContain(max);
    }
    expect(LIMITS).toMatchObject({ queryMaxChars: 512, topKMax: 100, demoTopKMax: 50, imageMaxBytes: 10 * 1024 * 1024, batchMaxQueries: 64, candidatesMax: 1000, pageSizeMax: 100, samplesPageSizeMax: 200, urlMaxChars: 2048 });
  });
});

describe("defaults (not rules) stated in the proto comments match the servers'", () => {
  const rankingProto = proto("ranking/v1/ranking_service.proto");
  const all = ["ranking/v1/ranking_service.proto", "data/v1/data_service.proto", "training/v1/training_service.proto"].map(proto).join("\n");

  it("top_k, demo top_k, caption top_k and page size", () => {
    expect(rankingProto).toContain(`// 1..${LIMITS.demoTopKMax} (0 means ${LIMITS.demoTopKDefault}).`);
    expect(rankingProto).toContain(`// Captions to return, 1..${LIMITS.topKMax} (0 means ${LIMITS.captionsTopKDefault}).`);
    const pageComments = [...all.matchAll(/(\/\/ 1\.\.\d+; 0 means \d+\.)\n\s*int32 page_size/g)].map((m) => m[1]);
    expect(pageComments.length).toBeGreaterThanOrEqual(5);
    for (const c of pageComments) expect([`// 1..${LIMITS.pageSizeMax}; 0 means ${LIMITS.pageSizeDefault}.`, `// 1..${LIMITS.samplesPageSizeMax}; 0 means ${LIMITS.pageSizeDefault}.`]).toContain(c);
  });
});
