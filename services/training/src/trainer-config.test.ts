import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { splitCommand } from "./command.js";
import { create } from "@bufbuild/protobuf";
import { fieldRules, training } from "@glimpse/api";
import { DEFAULT_PROMOTION_METRIC, DEFAULT_SEED, TRAINER_DEFAULTS, TRAINER_KEYS, planTraining } from "./trainer-config.js";

const CONFIG_PY = new URL("../../../model/glimpse_model/config.py", import.meta.url);
const CONFIG_SCHEMA = new URL("../../../model/glimpse_model/config.schema.json", import.meta.url);
const SCHEMA_COPY = new URL("./trainer-config.schema.json", import.meta.url);
const PROMOTION_PY = new URL("../../../model/glimpse_model/promotion.py", import.meta.url);
const PROTO = new URL("../../../proto/glimpse/training/v1/training_service.proto", import.meta.url);
/** The quality gate's metrics as the trainer names them (promotion.py METRICS), the default first. */
const METRICS_TUPLE = /^METRICS = \(([^)]*)\)/m.exec(readFileSync(PROMOTION_PY, "utf8"))![1]!;
const PROMOTION_METRICS = [...METRICS_TUPLE.matchAll(/"(\w+)"/g)].map((m) => m[1]!);

/** The values a TrainingConfig string field's buf.validate `string.in` rule admits. */
function choicesOf(name: string): string[] {
  const rules = fieldRules(training.TrainingConfigSchema.fields.find((f) => f.name === name)!);
  if (rules?.type.case !== "string") throw new Error(`TrainingConfig.${name} has no string rules`);
  return rules.type.value.in;
}

/** The comment above a field of the proto file, as one line. */
function protoComment(proto: string, field: string): string {
  const lines = proto.split("\n");
  const at = lines.findIndex((l) => new RegExp(`^\\s+\\S+ ${field} = \\d+( \\[|;)`).test(l));
  if (at < 0) throw new Error(`no field ${field} in the proto`);
  const comment: string[] = [];
  for (let i = at - 1; i >= 0 && lines[i]!.trim().startsWith("//"); i--) comment.unshift(lines[i]!.trim().slice(2).trim());
  return comment.join(" ");
}

describe("the trainer's config keys", () => {
  it("are the trainer's own schema: trainer-config.schema.json is an identical copy of the one config.py builds Config from", () => {
    expect(readFileSync(SCHEMA_COPY, "utf8"), "run `cp model/glimpse_model/config.schema.json services/training/src/trainer-config.schema.json`").toBe(
      readFileSync(CONFIG_SCHEMA, "utf8"),
    );
    expect(readFileSync(CONFIG_PY, "utf8")).toMatch(/^SCHEMA_PATH = Path\(__file__\)\.with_name\("config\.schema\.json"\)$/m);
  });

  it("match the Config dataclass (names, types, the defaults the service reports)", () => {
    const schema = JSON.parse(readFileSync(CONFIG_SCHEMA, "utf8")) as { properties: Record<string, { type: string; default: unknown }> };
    const pythonType = { integer: "int", number: "float", boolean: "bool", string: "str" } as Record<string, string>;
    const fields = Object.entries(schema.properties);
    expect(fields.length).toBeGreaterThan(40);
    expect(Object.fromEntries(fields.map(([k, v]) => [k, pythonType[v.type]]))).toEqual(TRAINER_KEYS);
    for (const [k, v] of Object.entries(TRAINER_DEFAULTS)) expect(schema.properties[k]!.default, k).toBe(v);
  });

  it("zero values take the trainer's defaults (seed 0 means the trainer's 1234, the shipped model's)", () => {
    const plan = planTraining(undefined);
    expect(plan).toMatchObject({ dataset: "flickr8k", datasetVersion: "", epochs: 4, phase2Epochs: 0, batchSize: 128, promote: false, promotionMetric: "rsum", promotionMargin: 0 });
    // nothing else: config.py's defaults (the shipped recipe, model/tests/test_config.py) apply
    expect(plan.trainerConfig).toEqual({ seed: 1234, phase2_epochs: 0 });
    expect(DEFAULT_SEED).toBe(TRAINER_DEFAULTS.seed);
  });

  it("are the defaults the proto documents", () => {
    const proto = readFileSync(PROTO, "utf8");
    expect(protoComment(proto, "epochs")).toContain(`0 means ${TRAINER_DEFAULTS.epochs}.`);
    expect(protoComment(proto, "batch_size")).toContain(`0 means ${TRAINER_DEFAULTS.batch_size}.`);
    expect(protoComment(proto, "learning_rate")).toContain(`0 means ${TRAINER_DEFAULTS.lr}.`);
    expect(protoComment(proto, "seed")).toContain(`0 means ${TRAINER_DEFAULTS.seed}`);
    const metric = protoComment(proto, "promotion_metric");
    expect(metric).toContain(`Empty means "${DEFAULT_PROMOTION_METRIC}"`);
    for (const m of PROMOTION_METRICS) expect(metric).toContain(`"${m}"`);
    const margin = protoComment(proto, "promotion_margin");
    expect(margin).toContain(`-600..600 for rsum, -100..100 for one recall); 0 (the default)`);
    // the rule on TrainingConfig: ± 600 for rsum, ± 100 for one recall
    const plan = (promotionMetric: string, promotionMargin: number) => () => planTraining(create(training.TrainingConfigSchema, { promote: true, promotionMetric, promotionMargin }));
    for (const [m, limit] of [["rsum", 600], ["t2i_r1", 100]] as const) {
      expect(plan(m, -limit)).not.toThrow();
      expect(plan(m, limit)).not.toThrow();
      expect(plan(m, limit + 0.5)).toThrow();
      expect(plan(m, -limit - 0.5)).toThrow();
    }
    // the rule's list of metrics is the trainer's
    expect(choicesOf("promotion_metric")).toEqual(["", ...PROMOTION_METRICS]);
  });

  it("offer every image tower the trainer builds as an image_encoder, bar the test-only tiny one (config.py NATIVE_IMAGE_SIZE)", () => {
    const table = /^NATIVE_IMAGE_SIZE[^=]*= \{([^}]*)\}/m.exec(readFileSync(CONFIG_PY, "utf8"))![1]!;
    const towers = [...table.matchAll(/"(\w+)":/g)].map((m) => m[1]!).filter((t) => t !== "tiny");
    expect(towers).toContain("efficientnet_lite2");
    expect([...choicesOf("image_encoder")].sort()).toEqual(["", ...towers].sort());
    for (const imageEncoder of towers) {
      expect(planTraining(create(training.TrainingConfigSchema, { imageEncoder })).trainerConfig["backbone"]).toBe(imageEncoder);
    }
    expect(() => planTraining(create(training.TrainingConfigSchema, { imageEncoder: "tiny" }))).toThrow();
  });

  it("name the quality gate's metrics as the trainer does (promotion.py)", () => {
    const source = readFileSync(PROMOTION_PY, "utf8");
    expect(PROMOTION_METRICS[0]).toBe(DEFAULT_PROMOTION_METRIC);
    expect(/^DEFAULT_METRIC = "(\w+)"/m.exec(source)![1]).toBe(DEFAULT_PROMOTION_METRIC);
  });
});

describe("splitCommand", () => {
  it("splits words and honours quotes and escapes", () => {
    expect(splitCommand("uv run --project model python -m x")).toEqual(["uv", "run", "--project", "model", "python", "-m", "x"]);
    expect(splitCommand(`a 'b c' "d \\"e\\"" f\\ g ''`)).toEqual(["a", "b c", 'd "e"', "f g", ""]);
    expect(() => splitCommand("a 'b")).toThrow(/unterminated/);
    expect(() => splitCommand("  ")).toThrow(/empty/);
  });
});
