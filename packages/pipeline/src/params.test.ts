import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { PipelineParamsSchema, PipelineStep, RunState } from "../../api/src/gen/glimpse/data/v1/data_service_pb.js";
import { PROTO_RUN_STATE, PROTO_STEP, STEPS } from "./events.js";
import { DEFAULT_CAPTIONS_URL, DEFAULT_IMAGES_URL, manifestParams, resolveParams } from "./params.js";
import { PipelineInputError } from "./util/errors.js";
import { canonicalJson } from "./util/json.js";

const ROOT = new URL("../../../", import.meta.url);
type ArgoParams = { parameters: { name: string; value?: unknown }[] };
/** The parts of a WorkflowTemplate (spec.arguments) and a CronWorkflow (spec.workflowSpec.arguments) read here. */
type ArgoDoc = { spec: { arguments: ArgoParams; workflowSpec: { arguments: ArgoParams } } };
const argoDoc = (file: string): ArgoDoc => parse(readFileSync(new URL(file, ROOT), "utf8")) as ArgoDoc;

describe("params", () => {
  it("fills the proto's defaults (empty and zero mean default)", () => {
    const p = resolveParams({ imagesUrl: "", sampleRatio: 0, seed: 0, trainRatio: 0, devRatio: 0, testRatio: 0 });
    expect(p).toEqual({
      dataset: "flickr8k",
      imagesUrl: DEFAULT_IMAGES_URL,
      captionsUrl: DEFAULT_CAPTIONS_URL,
      datasetSize: "full",
      sampleRatio: 0.1,
      splitMode: "official",
      trainRatio: 0.6,
      devRatio: 0.2,
      testRatio: 0.2,
      seed: 42,
    });
  });

  it("has the defaults the proto's comments state (PipelineParams)", () => {
    const proto = readFileSync(new URL("proto/glimpse/data/v1/data_service.proto", ROOT), "utf8");
    const d = resolveParams({});
    expect(proto).toContain(`(0 means ${d.sampleRatio})`);
    expect(proto).toContain(`(all 0 means ${d.trainRatio}/${d.devRatio}/${d.testRatio})`);
    expect(proto).toContain(`Seed for sampling and ratio splits (0 means ${d.seed})`);
  });

  it("rejects bad values, naming each", () => {
    expect(() => resolveParams({ dataset: "Bad Name", imagesUrl: "ftp://x/y.zip", sampleRatio: 1.5, trainRatio: 0.5, devRatio: 0.2, testRatio: 0.2, imagesSha256: "abc" })).toThrowError(
      PipelineInputError,
    );
    try {
      resolveParams({ dataset: "Bad Name", imagesUrl: "ftp://x/y.zip", sampleRatio: 1.5, trainRatio: 0.5, devRatio: 0.2, testRatio: 0.2, imagesSha256: "abc" });
    } catch (err) {
      const m = (err as Error).message;
      for (const s of ["dataset", "images_url", "sample_ratio", "must be 1", "images_sha256"]) expect(m).toContain(s);
    }
  });

  it("records only the parameters that shape the data in the manifest", () => {
    expect(manifestParams(resolveParams({}))).toEqual({ dataset_size: "full", split_mode: "official" });
    expect(manifestParams(resolveParams({ datasetSize: "sample", sampleRatio: 0.25, splitMode: "ratio", seed: 7 }))).toEqual({
      dataset_size: "sample",
      sample_ratio: 0.25,
      split_mode: "ratio",
      train_ratio: 0.6,
      dev_ratio: 0.2,
      test_ratio: 0.2,
      seed: 7,
    });
  });

  it("maps steps and states 1:1 onto the proto enums", () => {
    for (const s of STEPS) expect(PROTO_STEP[s]).toBe(PipelineStep[s.toUpperCase() as keyof typeof PipelineStep]);
    for (const [k, v] of Object.entries(PROTO_RUN_STATE)) expect(v).toBe(RunState[k.toUpperCase() as keyof typeof RunState]);
  });

  it("are the defaults of the Argo WorkflowTemplate (and the chart's copy) and of the CronWorkflow: resolveParams is their one source", () => {
    // Each PipelineParams field is the template parameter of its proto name in kebab case; an unset optional one is "".
    const defaults: Record<string, unknown> = { ...resolveParams({}) };
    const expected = Object.fromEntries(PipelineParamsSchema.fields.map((f) => [f.name.replaceAll("_", "-"), String(defaults[f.localName] ?? "")]));
    expect(Object.keys(expected)).toHaveLength(12);
    for (const file of ["argo/workflowtemplate.yaml", "helm/glimpse/files/workflowtemplate.yaml"]) {
      const declared = Object.fromEntries(argoDoc(file).spec.arguments.parameters.map((p) => [p.name, String(p.value ?? "")]));
      const defaultsThere = Object.fromEntries(Object.keys(expected).map((name) => [name, declared[name]]));
      expect(defaultsThere, `${file}: its parameter defaults are resolveParams({}) (packages/pipeline/src/params.ts)`).toEqual(expected);
    }
    // The weekly rebuild passes only defaults.
    const cron = argoDoc("argo/cronworkflow.yaml").spec.workflowSpec.arguments.parameters;
    expect(cron.length).toBeGreaterThan(0);
    for (const p of cron) expect(String(p.value ?? ""), `argo/cronworkflow.yaml: ${p.name}`).toBe(expected[p.name]);
  });

  it("canonical JSON sorts keys at every level and drops undefined", () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: undefined } })).toBe('{"a":{"d":[3,{"y":2,"z":1}]},"b":1}');
  });
});
