import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { splitCommand } from "./command.js";
import { TRAINER_DEFAULTS, TRAINER_KEYS, planTraining } from "./trainer-config.js";

const CONFIG_PY = new URL("../../../model/glimpse_model/config.py", import.meta.url);

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
    expect(plan).toMatchObject({ dataset: "flickr8k", datasetVersion: "", epochs: 20, phase2Epochs: 0, batchSize: 128, promote: false });
    expect(plan.trainerConfig).toEqual({ seed: 42, phase2_epochs: 0 });
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
