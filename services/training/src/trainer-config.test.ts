import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { splitCommand } from "./command.js";
import { DEFAULT_PROMOTION_METRIC, PROMOTION_METRICS, promotionMarginLimit, TRAINER_DEFAULTS, TRAINER_KEYS, planTraining } from "./trainer-config.js";

const CONFIG_PY = new URL("../../../model/glimpse_model/config.py", import.meta.url);
const PROMOTION_PY = new URL("../../../model/glimpse_model/promotion.py", import.meta.url);
const PROTO = new URL("../../../proto/glimpse/training/v1/training_service.proto", import.meta.url);

/** The comment above a field of the proto file, as one line. */
function protoComment(proto: string, field: string): string {
  const lines = proto.split("\n");
  const at = lines.findIndex((l) => new RegExp(`^\\s+\\S+ ${field} = \\d+;`).test(l));
  if (at < 0) throw new Error(`no field ${field} in the proto`);
  const comment: string[] = [];
  for (let i = at - 1; i >= 0 && lines[i]!.trim().startsWith("//"); i--) comment.unshift(lines[i]!.trim().slice(2).trim());
  return comment.join(" ");
}

/** `name: type = default` lines of the Config dataclass in model/glimpse_model/config.py. */
function dataclassFields(source: string): Map<string, { type: string; value: string }> {
  const body = source.split(/^class Config\b.*$/m)[1]!.split(/^\S/m)[0]!;
  const fields = new Map<string, { type: string; value: string }>();
  for (const m of body.matchAll(/^ {4}(\w+): (\w+) = ([^#\n]+)/gm)) fields.set(m[1]!, { type: m[2]!, value: m[3]!.trim() });
  return fields;
}

describe("the trainer's config keys", () => {
  it("match the Config dataclass (names, types, the defaults the service reports)", () => {
    const fields = dataclassFields(readFileSync(CONFIG_PY, "utf8"));
    expect(fields.size).toBeGreaterThan(40);
    expect(Object.fromEntries([...fields].map(([k, v]) => [k, v.type]))).toEqual(TRAINER_KEYS);
    for (const [k, v] of Object.entries(TRAINER_DEFAULTS)) expect(Number(fields.get(k)!.value), k).toBe(v);
  });

  it("zero values take the trainer's defaults (seed 0 means 42)", () => {
    const plan = planTraining(undefined);
    expect(plan).toMatchObject({ dataset: "flickr8k", datasetVersion: "", epochs: 4, phase2Epochs: 0, batchSize: 128, promote: false, promotionMetric: "rsum", promotionMargin: 0 });
    // nothing else: config.py's defaults (the shipped recipe, model/tests/test_config.py) apply
    expect(plan.trainerConfig).toEqual({ seed: 42, phase2_epochs: 0 });
  });

  it("are the defaults the proto documents", () => {
    const proto = readFileSync(PROTO, "utf8");
    expect(protoComment(proto, "epochs")).toContain(`0 means ${TRAINER_DEFAULTS.epochs}.`);
    expect(protoComment(proto, "batch_size")).toContain(`0 means ${TRAINER_DEFAULTS.batch_size}.`);
    expect(protoComment(proto, "learning_rate")).toContain(`0 means ${TRAINER_DEFAULTS.lr}.`);
    const metric = protoComment(proto, "promotion_metric");
    expect(metric).toContain(`Empty means "${DEFAULT_PROMOTION_METRIC}"`);
    for (const m of PROMOTION_METRICS) expect(metric).toContain(`"${m}"`);
    const margin = protoComment(proto, "promotion_margin");
    expect(margin).toContain(`-600..600 for rsum, -100..100 for one recall); 0 (the default)`);
    expect([promotionMarginLimit("rsum"), promotionMarginLimit("t2i_r1")]).toEqual([600, 100]);
  });

  it("name the quality gate's metrics as the trainer does (promotion.py)", () => {
    const source = readFileSync(PROMOTION_PY, "utf8");
    const tuple = /^METRICS = \(([^)]*)\)/m.exec(source)![1]!;
    expect([...tuple.matchAll(/"(\w+)"/g)].map((m) => m[1])).toEqual([...PROMOTION_METRICS]);
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
