import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { create, createRegistry, getExtension, hasExtension, type DescExtension } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import type { StringRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { count_max, file_glimpse_api_v1_rules, text_max_chars, url_max_chars } from "./gen/glimpse/api/v1/rules_pb.js";
import { IDENTIFIER_RULES, LIMITS, PATTERNS, rulePattern } from "./limits.js";
import { pageSizes } from "./pagination.js";
import { requestMessages } from "./services.js";
import { fieldRules, requestViolations } from "./validate.js";

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

  it("each PATTERNS entry (and the URL rule's pattern) accepts and rejects what its rule does in protovalidate", () => {
    const examples: Record<string, string[]> = {
      dataset: ["flickr8k", "coco-2014", "a", "a".repeat(63), "a".repeat(64), "-a", "Flickr8k", "flickr_8k"],
      datasetVersion: ["0123456789abcdef", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0", "m-0123456789abcdef"],
      modelVersion: ["m-0123456789abcdef", "m-0123456789abcde", "M-0123456789abcdef", "0123456789abcdef", "m-0123456789abcdefa"],
      imageId: ["1000268201_693b08cb0e", "a.b-c_D", "x".repeat(128), "x".repeat(129), "a/b", "../etc/passwd"],
      runId: ["tr-20260101120000000-a1b2c3", "pr-20260101120000-abcdef", "x".repeat(64), "x".repeat(65), "a.b", "a b"],
      sha256: ["0".repeat(64), "0".repeat(63), "A".repeat(64), "g".repeat(64)],
      collectionId: ["holiday", "shop-2026", "a", "a".repeat(63), "a".repeat(64), "1abc", "Holiday", "a_b"],
      collectionName: ["collections/holiday", "collections/a", "collections/Holiday", "collection/holiday", "collections/holiday/photos/0123456789abcdef"],
      photoName: ["collections/holiday/photos/0123456789abcdef", "collections/holiday/photos/0123456789ABCDEF", "collections/holiday/photos/0123", "collections/holiday"],
      photoId: ["0123456789abcdef", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0"],
      url: ["https://example.com/a.zip", "http://x", "file:///data/Flickr8k_Dataset.zip", "ftp://x", "https://a b", "https://", "HTTPS://x"],
    };
    const shared = ["a", "ü", "狗", "a\n", " a", "a\u3000b", "?!…"];
    // The servers' validator (the platform's RegExp) and protovalidate's default one (RE2).
    const re2 = createValidator({ registry: createRegistry(file_glimpse_api_v1_rules) });
    const checked = new Set<string>();
    for (const { message, field, name, rules } of fields) {
      const r = stringRules(rules);
      const kind = r && ruleKind(r);
      if (!kind) continue;
      const re = kind === "url" ? rulePattern(url_max_chars) : PATTERNS[kind as keyof typeof PATTERNS];
      const where = `${message.typeName}.${name}`;
      const path = field.fieldKind === "list" ? `${name}[0]` : name;
      const samples = [...examples[kind]!, ...shared];
      // Each kind's examples include ones its pattern accepts and ones it rejects.
      expect(samples.some((s) => re.test(s)) && samples.some((s) => !re.test(s)), kind).toBe(true);
      for (const s of ["", ...samples]) {
        const value = field.fieldKind === "list" ? [s] : s;
        const msg = create(message, (field.oneof ? { [field.oneof.localName]: { case: field.localName, value } } : { [field.localName]: value }) as never);
        const bad = requestViolations(message, msg).filter((v) => v.field === path && v.reason === "BAD_FORMAT");
        // this field's own violation (another required field of the message may be empty too)
        const badRe2 = (re2.validate(message, msg).violations ?? []).some((v) => v.ruleId === "BAD_FORMAT" && v.field.some((el) => el.kind === "field" && el.name === name));
        // Empty: an identifier rule lets it pass (the field's default, or `required` says REQUIRED),
        // except image_id's and the resource names': there is no default image, collection or photo.
        const expected = s === "" ? ["imageId", "collectionName", "photoName"].includes(kind) && !rules.required : !re.test(s);
        expect(bad.length > 0, `${where} ${JSON.stringify(s)}`).toBe(expected);
        expect(badRe2, `${where} ${JSON.stringify(s)} (RE2)`).toBe(expected);
        for (const v of bad) expect(new RegExp(v.description.replace(/^must match /, "")).source, where).toBe(re.source);
      }
      checked.add(kind);
    }
    expect([...checked].sort()).toEqual(SHAPE_RULES.map(([k]) => k).sort());
  });

  it("a rule's pattern is the one this.matches(r'…') in its CEL", () => {
    expect(rulePattern(IDENTIFIER_RULES.dataset).source).toBe("^[a-z0-9][a-z0-9-]{0,62}$");
    expect(rulePattern(url_max_chars).test("https://example.com/a b")).toBe(false);
    // text_max_chars has one too (a word); a rule with none is refused.
    expect(rulePattern(text_max_chars).source).toBe("[\\p{L}\\p{N}]");
    expect(() => rulePattern(count_max)).toThrow(/expected one this\.matches/);
  });

  it("every top_k bound is one of LIMITS", () => {
    let counts = 0;
    for (const { message, field, name, rules } of fields) {
      if (rules.type.case !== "int32") continue;
      const r = rules.type.value;
      const max = hasExtension(r, count_max) ? getExtension(r, count_max) : r.lessThan.case === "lte" ? r.lessThan.value : undefined;
      if (max === undefined) continue;
      if (hasExtension(r, count_max)) {
        // count_max: 0 (the default) and 1..max pass; outside, OUT_OF_RANGE as a gte/lte range said it.
        counts++;
        const at = (n: number) => requestViolations(message, create(message, { [field.localName]: n } as never)).filter((v) => v.field === name);
        for (const n of [0, 1, max]) expect(at(n), `${message.typeName}.${name} ${n}`).toEqual([]);
        for (const n of [-1, max + 1]) expect(at(n)).toEqual([{ field: name, description: `must be between 1 and ${max} (got ${n})`, reason: "OUT_OF_RANGE" }]);
      }
      if (name.startsWith("top_k")) expect([LIMITS.topKMax, LIMITS.demoTopKMax], `${message.typeName}.${name}`).toContain(max);
    }
    expect(counts).toBeGreaterThanOrEqual(8);
    expect(LIMITS).toMatchObject({ queryMaxChars: 512, topKMax: 100, demoTopKMax: 50, imageMaxBytes: 10 * 1024 * 1024, batchMaxQueries: 64, candidatesMax: 1000, urlMaxChars: 2048 });
  });
});

describe("defaults (not rules) stated in the proto comments match the servers'", () => {
  const rankingProto = proto("ranking/v1/ranking_service.proto");
  const all = ["ranking/v1/ranking_service.proto", "data/v1/data_service.proto", "training/v1/training_service.proto"].map(proto).join("\n");

  it("top_k, demo top_k and caption top_k", () => {
    expect(rankingProto).toContain(`// 1..${LIMITS.demoTopKMax} (0 means ${LIMITS.demoTopKDefault}).`);
    expect(rankingProto).toContain(`// Captions to return, 1..${LIMITS.topKMax} (0 means ${LIMITS.captionsTopKDefault}).`);
  });

  it("every List request's page_size declares its sizes (AIP-158), and its comment states them", () => {
    const lists = requestMessages().filter((m) => m.fields.some((f) => f.name === "page_size"));
    expect(lists.map((m) => m.name).sort()).toEqual(["ListCollectionsRequest", "ListDatasetVersionsRequest", "ListModelVersionsRequest", "ListPhotosRequest", "ListPipelineRunsRequest", "ListSamplesRequest", "ListTrainingRunsRequest"]);
    for (const m of lists) {
      const { defaultSize, maxSize } = pageSizes(m);
      expect(defaultSize, m.typeName).toBeGreaterThan(0);
      expect(maxSize, m.typeName).toBeGreaterThanOrEqual(defaultSize);
      const field = m.fields.find((f) => f.name === "page_size")!;
      expect(all, m.typeName).toContain(`  // 0 means ${defaultSize}; above ${maxSize} reads as ${maxSize}.\n  int32 page_size = ${field.number} [`);
      // A negative size is refused; 0, the max and anything above it are read (clamped: pagination.ts).
      const at = (n: number) => requestViolations(m, create(m, { pageSize: n } as never)).filter((v) => v.field === "page_size");
      for (const n of [0, maxSize, maxSize + 1, 2 ** 31 - 1]) expect(at(n), `${m.typeName} ${n}`).toEqual([]);
      expect(at(-1)).toEqual([{ field: "page_size", description: "must be greater than or equal to 0 (got -1)", reason: "OUT_OF_RANGE" }]);
    }
  });
});
