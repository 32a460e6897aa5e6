import { readFileSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import { data } from "@glimpse/api";
import { resolveParams } from "@glimpse/pipeline";
import { checkCrd, loadArgoCrds, type Crd } from "@glimpse/pipeline/testing";
import { parse } from "yaml";
import { beforeAll, describe, expect, it } from "vitest";
import { applyWorkflowStatus, workflowFor } from "./argo.js";
import { pipelineInput } from "./runs.js";

const TEMPLATE = parse(readFileSync(new URL("../../../argo/workflowtemplate.yaml", import.meta.url), "utf8")) as {
  metadata: { name: string };
  spec: { arguments: { parameters: { name: string }[] } };
};

describe("the Argo executor's Workflow", () => {
  let workflowCrd: Crd;
  beforeAll(async () => {
    workflowCrd = (await loadArgoCrds(["workflows"]))["workflows"]!;
  });

  const params = create(data.PipelineParamsSchema, { datasetSize: data.DatasetSize.SAMPLE, sampleRatio: 0.25, imagesUrl: "https://example.com/i.zip" });
  const wf = workflowFor("pr-20261126-abc123", resolveParams(pipelineInput(params)), {
    namespace: "glimpse",
    template: TEMPLATE.metadata.name,
    bucket: "glimpse",
    minioEndpoint: "http://glimpse-minio:9000",
    image: "glimpse:0.1.0",
    syncUrl: "http://glimpse-gateway:8000/data/register",
  });

  it("is valid against Argo's Workflow CRD schema", () => {
    expect(checkCrd(workflowCrd, wf)).toEqual([]);
  });

  it("references the WorkflowTemplate in argo/ and only parameters it declares", () => {
    const spec = wf["spec"] as { workflowTemplateRef: { name: string }; arguments: { parameters: { name: string; value: string }[] } };
    expect(spec.workflowTemplateRef.name).toBe(TEMPLATE.metadata.name);
    const declared = new Set(TEMPLATE.spec.arguments.parameters.map((p) => p.name));
    for (const p of spec.arguments.parameters) expect(declared, p.name).toContain(p.name);
    const byName = Object.fromEntries(spec.arguments.parameters.map((p) => [p.name, p.value]));
    expect(byName).toMatchObject({ "dataset-size": "sample", "sample-ratio": "0.25", "images-url": "https://example.com/i.zip", dataset: "flickr8k" });
  });

  it("folds the workflow's node statuses into the run's steps", () => {
    const run = create(data.PipelineRunSchema, {
      state: data.RunState.RUNNING,
      steps: [1, 2, 3, 4, 5, 6, 7].map((step) => create(data.StepStatusSchema, { step, state: data.RunState.PENDING })),
    });
    applyWorkflowStatus(run, {
      phase: "Running",
      nodes: {
        a: { displayName: "download", phase: "Succeeded", startedAt: "2026-11-26T10:00:00Z", finishedAt: "2026-11-26T10:00:05Z" },
        b: { displayName: "extract", phase: "Running" },
        c: { displayName: "glimpse-pipeline-x", phase: "Running" },
      },
    });
    expect(run.state).toBe(data.RunState.RUNNING);
    expect(run.steps[0]!.state).toBe(data.RunState.SUCCEEDED);
    expect(run.steps[1]!.state).toBe(data.RunState.RUNNING);
    applyWorkflowStatus(run, { phase: "Succeeded", nodes: { u: { displayName: "upload", phase: "Succeeded", outputs: { parameters: [{ name: "version", value: "0123456789abcdef" }] } } } });
    expect(run.state).toBe(data.RunState.SUCCEEDED);
    expect(run.datasetVersion).toBe("0123456789abcdef");
    expect(run.finishedAt).toBeDefined();
    applyWorkflowStatus(run, { phase: "Failed", message: "child failed" });
    expect(run.error).toBe("child failed");
  });
});
