import { create, getOption, hasExtension, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { createRegistry } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { file_glimpse_api_v1_rules, url_max_chars } from "./gen/glimpse/api/v1/rules_pb.js";
import * as data from "./gen/glimpse/data/v1/data_service_pb.js";
import * as ds from "./gen/glimpse/data/v1/dataset_pb.js";
import * as ranking from "./gen/glimpse/ranking/v1/ranking_service_pb.js";
import * as training from "./gen/glimpse/training/v1/training_service_pb.js";
import { FieldBehavior, field_behavior } from "./gen/google/api/field_behavior_pb.js";
import { IDENTIFIER_RULES } from "./limits.js";
import { requestMessages } from "./services.js";
import { fieldRules, requestViolations } from "./validate.js";

const PATTERN_RULES = [...Object.values(IDENTIFIER_RULES), url_max_chars];

const check = <D extends DescMessage>(schema: D, init: MessageInitShape<D>) => requestViolations(schema, create(schema, init));
const reasons = <D extends DescMessage>(schema: D, init: MessageInitShape<D>) => check(schema, init).map((v) => `${v.field}:${v.reason}`);

describe("request rules (buf.validate) → google.rpc.BadRequest field violations", () => {
  it("keeps the earlier reasons, field paths and descriptions", () => {
    expect(check(ranking.SearchImagesRequestSchema, { query: "", topK: 500 })).toEqual([
      { field: "query", description: "must not be empty", reason: "REQUIRED" },
      { field: "top_k", description: "must be between 1 and 100 (got 500)", reason: "OUT_OF_RANGE" },
    ]);
    expect(reasons(ranking.SearchImagesRequestSchema, { query: " \n\u3000 " })).toEqual(["query:REQUIRED"]);
    expect(check(ranking.SearchImagesRequestSchema, { query: ` ${"dog ".repeat(200)}` })).toEqual([{ field: "query", description: "must be at most 512 characters (got 799)", reason: "TOO_LONG" }]);
    expect(reasons(ranking.DemoSearchRequestSchema, { query: "?!…", topK: 51 })).toEqual(["query:NO_WORDS", "top_k:OUT_OF_RANGE"]);
    expect(reasons(ranking.SearchImagesRequestSchema, { query: "a dog", scope: { datasetVersion: "latest", split: 9 as ds.Split } })).toEqual(["scope.dataset_version:BAD_FORMAT", "scope.split:BAD_ENUM"]);
    expect(reasons(ranking.SearchCaptionsRequestSchema, {})).toEqual(["image:REQUIRED"]);
    expect(reasons(ranking.SearchCaptionsRequestSchema, { image: { case: "imageId", value: "../etc/passwd" } })).toEqual(["image_id:BAD_FORMAT"]);
    expect(reasons(ranking.SearchCaptionsRequestSchema, { image: { case: "imageBytes", value: new Uint8Array() } })).toEqual(["image_bytes:REQUIRED"]);
    expect(reasons(ranking.BatchSearchImagesRequestSchema, {})).toEqual(["queries:REQUIRED"]);
    expect(reasons(ranking.BatchSearchImagesRequestSchema, { queries: Array.from({ length: 65 }, () => "a dog") })).toEqual(["queries:TOO_MANY"]);
    expect(reasons(ranking.BatchSearchImagesRequestSchema, { queries: ["a dog", ""] })).toEqual(["queries[1]:REQUIRED"]);
    expect(reasons(ranking.RankCandidatesRequestSchema, {})).toEqual(["candidate_image_ids:REQUIRED", "query:REQUIRED"]);
    expect(reasons(ranking.RankCandidatesRequestSchema, { query: { case: "text", value: "a dog" }, candidateImageIds: ["a"], candidateTexts: ["b"] })).toEqual(["candidate_texts:EXCLUSIVE"]);
    expect(reasons(ranking.RankCandidatesRequestSchema, { query: { case: "text", value: "a dog" }, candidateImageIds: ["ok", "../x"] })).toEqual(["candidate_image_ids[1]:BAD_FORMAT"]);
    expect(check(ranking.RankUploadedImageRequestSchema, { image: new Uint8Array(10 * 1024 * 1024 + 1), topKImages: -1 })).toEqual([
      { field: "image", description: "must be at most 10485760 bytes (got 10485761)", reason: "TOO_LARGE" },
      { field: "top_k_images", description: "must be between 0 and 100 (got -1)", reason: "OUT_OF_RANGE" },
    ]);
    expect(reasons(ranking.RankUploadedImageRequestSchema, {})).toEqual(["image:REQUIRED"]);
    expect(reasons(ranking.PromoteModelRequestSchema, { version: "v1" })).toEqual(["version:BAD_FORMAT"]);
    expect(reasons(ranking.BuildIndexRequestSchema, { kind: "ivf" })).toEqual(["kind:BAD_VALUE"]);
    expect(reasons(data.ListSamplesRequestSchema, { dataset: "Bad_Name", split: 9 as ds.Split, pageSize: -1 })).toEqual(["dataset:BAD_FORMAT", "split:BAD_ENUM", "page_size:OUT_OF_RANGE"]);
    expect(reasons(data.GetPipelineRunRequestSchema, {})).toEqual(["name:REQUIRED"]);
    expect(reasons(data.GetPipelineRunRequestSchema, { runId: "pr-1" })).toEqual([]);
    expect(reasons(data.GetPipelineRunRequestSchema, { name: "pipelineRuns/pr-1", runId: "pr-2" })).toEqual(["run_id:CONFLICT"]);
    expect(reasons(training.GetTrainingStatusRequestSchema, { runId: "../etc" })).toEqual(["run_id:BAD_FORMAT"]);
    expect(reasons(training.ListTrainingRunsRequestSchema, { pageSize: -5 })).toEqual(["page_size:OUT_OF_RANGE"]);
  });

  it("PipelineParams: every field, and the ratios reported on train_ratio as before", () => {
    const bad = { imagesUrl: "ftp://x", captionsUrl: `http://${"x".repeat(3000)}`, imagesSha256: "zz", sampleRatio: 1.5, seed: -1n, datasetSize: 7 as data.DatasetSize, splitMode: 9 as data.SplitMode };
    expect(reasons(data.StartPipelineRunRequestSchema, { params: bad }).sort()).toEqual(
      ["params.images_url:BAD_FORMAT", "params.captions_url:TOO_LONG", "params.images_sha256:BAD_FORMAT", "params.sample_ratio:OUT_OF_RANGE", "params.seed:OUT_OF_RANGE", "params.dataset_size:BAD_ENUM", "params.split_mode:BAD_ENUM"].sort(),
    );
    expect(reasons(data.StartPipelineRunRequestSchema, { params: { devRatio: 1.5 } })).toEqual(["params.train_ratio:OUT_OF_RANGE"]);
    expect(reasons(data.StartPipelineRunRequestSchema, { params: { trainRatio: 0.5, devRatio: 0.2, testRatio: 0.2 } })).toEqual(["params.train_ratio:BAD_SUM"]);
    expect(reasons(data.StartPipelineRunRequestSchema, { params: { trainRatio: 0.6, devRatio: 0.2, testRatio: 0.2 } })).toEqual([]);
    expect(reasons(data.StartPipelineRunRequestSchema, { params: { imagesUrl: "file:///data/Flickr8k_Dataset.zip", sampleRatio: 0.1, seed: 7n } })).toEqual([]);
  });

  it("accepts zero values where the proto documents a default", () => {
    for (const m of requestMessages()) {
      // A message whose empty form the RPC refuses (a required field) says so by a violation naming it.
      const fields = check(m, {} as never).map((v) => v.field);
      for (const f of fields) expect(["image", "query", "queries", "candidate_image_ids", "version", "run_id", "image_id", "name", "parent", "collection_id", "collection", "source", "kind", "path", "urls", "training_run", "pipeline_run", "index_build"], `${m.typeName}.${f}`).toContain(f);
    }
  });

  it("a field marked REQUIRED (google.api.field_behavior) is exactly one the rules refuse empty, as REQUIRED", () => {
    // Which one of a pair a message-level rule asks for is not a field's own requirement.
    const eitherOr = new Set(["glimpse.ranking.v1.RankCandidatesRequest.candidate_image_ids"]);
    let marked = 0;
    for (const m of requestMessages()) {
      const empty = requestViolations(m, create(m));
      const required = empty.filter((v) => v.reason === "REQUIRED" && m.fields.some((f) => f.name === v.field) && !eitherOr.has(`${m.typeName}.${v.field}`));
      const annotated = m.fields.filter((f) => (getOption(f, field_behavior) ?? []).includes(FieldBehavior.REQUIRED)).map((f) => f.name);
      marked += annotated.length;
      expect(required.map((v) => v.field).sort(), m.typeName).toEqual([...annotated].sort());
      // An empty value is reported REQUIRED, never as a bad format.
      expect(empty.filter((v) => annotated.includes(v.field) && v.reason !== "REQUIRED"), m.typeName).toEqual([]);
    }
    expect(marked).toBeGreaterThanOrEqual(25);
  });

  it("Scope.split admits exactly glimpse.data.v1.Split's values", () => {
    const numbers = ds.SplitSchema.values.map((v) => v.number);
    for (const split of numbers) expect(reasons(ranking.ScopeSchema, { split })).toEqual([]);
    for (const split of [Math.min(...numbers) - 1, Math.max(...numbers) + 1]) expect(reasons(ranking.ScopeSchema, { split })).toEqual(["split:BAD_ENUM"]);
  });

  it("the protos' patterns mean the same to RegExp (what the servers run) and to RE2 (protovalidate's default)", () => {
    const re2 = createValidator({ registry: createRegistry(file_glimpse_api_v1_rules) });
    const samples = ["", "a", "flickr8k", "Bad_Name", "0123456789abcdef", "m-0123456789abcdef", "1000268201_693b08cb0e", "../etc/passwd", "a b", "ü", "x".repeat(200), "https://example.com/a.zip", "file:///x", "ftp://x", "tr-20260101120000000-a1b2c3", "a".repeat(64), "?!…", "狗", "  a dog  "];
    let patterns = 0;
    for (const m of requestMessages()) {
      for (const f of m.fields) {
        const r = fieldRules(f);
        const s = r?.type.case === "string" ? r.type.value : r?.type.case === "repeated" && r.type.value.items?.type.case === "string" ? r.type.value.items.type.value : undefined;
        // A pattern: string.pattern, or one of Glimpse's rules that match one (identifiers, URLs).
        if (!s || !(s.pattern || PATTERN_RULES.some((ext) => hasExtension(s, ext)))) continue;
        patterns++;
        for (const s of samples) {
          const value = f.fieldKind === "list" ? [s] : s;
          const msg = create(m, (f.oneof ? { [f.oneof.localName]: { case: f.localName, value } } : { [f.localName]: value }) as never);
          const ours = requestViolations(m, msg).some((v) => v.reason === "BAD_FORMAT");
          const theirs = re2.validate(m, msg).violations?.some((v) => v.ruleId.endsWith(".pattern") || v.ruleId === "BAD_FORMAT") ?? false;
          expect(ours, `${m.typeName}.${f.name} ${JSON.stringify(s)}`).toBe(theirs);
        }
      }
    }
    expect(patterns).toBeGreaterThan(10);
    // The text rule's \p{L}\p{N} (a word) too.
    for (const query of samples) {
      const msg = create(ranking.SearchImagesRequestSchema, { query });
      expect(requestViolations(ranking.SearchImagesRequestSchema, msg).map((v) => v.reason), JSON.stringify(query)).toEqual(re2.validate(ranking.SearchImagesRequestSchema, msg).violations?.map((v) => v.ruleId) ?? []);
    }
  });
});
